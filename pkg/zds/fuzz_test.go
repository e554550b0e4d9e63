package zds

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/zdsapi"
)

func mustMarshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecodeRequest checks that any packet (bytes + fd count) either decodes into a
// request that satisfies the protocol's invariants or fails with an error — never panics.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(mustMarshal(f, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Add{Add: &zdsapi.AddWorkload{
		Uid: "u", WorkloadInfo: &zdsapi.WorkloadInfo{Name: "n", Namespace: "ns", ServiceAccount: "sa"}}}}), uint8(1))
	f.Add(mustMarshal(f, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Del{Del: &zdsapi.DelWorkload{Uid: "u"}}}), uint8(0))
	f.Add(mustMarshal(f, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Keep{Keep: &zdsapi.KeepWorkload{Uid: "u"}}}), uint8(0))
	f.Add(mustMarshal(f, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_SnapshotSent{SnapshotSent: &zdsapi.SnapshotSent{}}}), uint8(2))
	f.Add([]byte{0xff, 0x01}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		req, err := decodeRequest(data, int(nfds))
		if err != nil {
			return
		}
		switch p := req.GetPayload().(type) {
		case *zdsapi.WorkloadRequest_Add:
			if p.Add.GetUid() == "" || nfds < 1 || nfds > maxFDs {
				t.Fatalf("accepted invalid add %v with %d fds", req, nfds)
			}
		case nil:
			t.Fatal("accepted request without payload")
		default:
			if nfds != 0 {
				t.Fatalf("accepted %v with %d fds", req, nfds)
			}
		}
	})
}

// FuzzDecodeAck checks response decoding never panics and never accepts a response
// without an Ack.
func FuzzDecodeAck(f *testing.F) {
	f.Add(mustMarshal(f, &zdsapi.WorkloadResponse{Payload: &zdsapi.WorkloadResponse_Ack{Ack: &zdsapi.Ack{Error: "x"}}}), uint8(0))
	f.Add([]byte{0x0a}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		ack, err := decodeAck(data, int(nfds))
		if err == nil && (ack == nil || nfds != 0) {
			t.Fatalf("accepted %x with %d fds", data, nfds)
		}
	})
}

// FuzzDecodeHello checks hello decoding never panics and admits only version V1.
func FuzzDecodeHello(f *testing.F) {
	f.Add(mustMarshal(f, &zdsapi.ZdsHello{Version: zdsapi.Version_V1}))
	f.Add([]byte{0x08, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHello(data, 0)
		if err == nil && h.GetVersion() != zdsapi.Version_V1 {
			t.Fatalf("accepted hello %v", h)
		}
	})
}
