package delta

import (
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"
)

const (
	typeA = "type.googleapis.com/test.A"
	typeB = "type.googleapis.com/test.B"
)

// recorder is a Handler remembering its calls, refusing when refuse is set.
type recorder struct {
	calls  [][]*Resource
	refuse error
}

func (r *recorder) Apply(_ string, upserts []*Resource, _ []string) error {
	r.calls = append(r.calls, upserts)
	return r.refuse
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name       string
		resp       *Response
		refuse     error
		wantNack   bool
		wantCalls  int
		wantSynced bool
		wantHeld   map[string]string
	}{
		{"accepted", &Response{TypeUrl: typeA, Nonce: "1", Resources: []*Resource{{Name: "r", Version: "v"}}},
			nil, false, 1, true, map[string]string{"r": "v"}},
		{"refused", &Response{TypeUrl: typeA, Nonce: "2", Resources: []*Resource{{Name: "r", Version: "v"}}},
			errors.New("no"), true, 1, false, map[string]string{}},
		{"unsubscribed type", &Response{TypeUrl: typeB, Nonce: "3", Resources: []*Resource{{Name: "r", Version: "v"}}},
			nil, true, 0, false, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &recorder{refuse: tc.refuse}
			c := New(Config{TypeURLs: []string{typeA}, Handler: h, Logger: slog.New(slog.DiscardHandler)})
			ack := c.handle(tc.resp)
			if ack.GetTypeUrl() != tc.resp.GetTypeUrl() || ack.GetResponseNonce() != tc.resp.GetNonce() {
				t.Fatalf("ack %v does not answer %v", ack, tc.resp)
			}
			if got := ack.GetErrorDetail() != nil; got != tc.wantNack {
				t.Fatalf("nack = %v, want %v (%v)", got, tc.wantNack, ack)
			}
			if len(h.calls) != tc.wantCalls {
				t.Fatalf("handler calls = %d, want %d", len(h.calls), tc.wantCalls)
			}
			select {
			case <-c.Synced():
				if !tc.wantSynced {
					t.Fatal("synced")
				}
			default:
				if tc.wantSynced {
					t.Fatal("not synced")
				}
			}
			if held := c.versions[typeA]; len(held) != len(tc.wantHeld) || held["r"] != tc.wantHeld["r"] {
				t.Fatalf("held = %v, want %v", held, tc.wantHeld)
			}
		})
	}
}

// FuzzHandle feeds arbitrary decoded responses to the client: it must never panic and
// must answer each with an ACK or NACK that echoes the type and nonce.
func FuzzHandle(f *testing.F) {
	seed, _ := proto.Marshal(&Response{TypeUrl: typeA, Nonce: "1",
		Resources: []*Resource{{Name: "a", Version: "v"}}, RemovedResources: []string{"b"}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := &Response{}
		if proto.Unmarshal(data, resp) != nil {
			return
		}
		c := New(Config{TypeURLs: []string{typeA}, Handler: &recorder{}, Logger: slog.New(slog.DiscardHandler)})
		ack := c.handle(resp)
		if ack.GetTypeUrl() != resp.GetTypeUrl() || ack.GetResponseNonce() != resp.GetNonce() {
			t.Fatalf("ack %v does not answer %v", ack, resp)
		}
		if resp.GetTypeUrl() != typeA && ack.GetErrorDetail() == nil {
			t.Fatalf("response of type %q was ACKed", resp.GetTypeUrl())
		}
	})
}
