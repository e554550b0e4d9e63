package delta

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestMessagesMatchEnvoy: each delta message decodes as its Envoy counterpart and back,
// fields delta does not declare included.
func TestMessagesMatchEnvoy(t *testing.T) {
	meta, err := structpb.NewStruct(map[string]any{"NAMESPACE": "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := anypb.New(wrapperspb.String("payload"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		lean, envoy proto.Message
	}{
		{"request",
			&Request{Node: &Node{Id: "n", Cluster: "c", Metadata: meta}, TypeUrl: typeA,
				ResourceNamesSubscribe: []string{"*"}, ResourceNamesUnsubscribe: []string{"x"},
				InitialResourceVersions: map[string]string{"a": "1", "b": "2"}, ResponseNonce: "7",
				ErrorDetail: &Status{Code: 3, Message: "bad"}},
			&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "n", Cluster: "c", Metadata: meta}, TypeUrl: typeA,
				ResourceNamesSubscribe: []string{"*"}, ResourceNamesUnsubscribe: []string{"x"},
				InitialResourceVersions: map[string]string{"a": "1", "b": "2"}, ResponseNonce: "7",
				ErrorDetail: &statuspb.Status{Code: 3, Message: "bad"}}},
		{"response",
			&Response{TypeUrl: typeA, Nonce: "9", RemovedResources: []string{"gone"},
				Resources: []*Resource{{Name: "a", Version: "v1", Resource: payload, Aliases: []string{"b"}}}},
			&discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeA, Nonce: "9", RemovedResources: []string{"gone"},
				Resources: []*discoveryv3.Resource{{Name: "a", Version: "v1", Resource: payload, Aliases: []string{"b"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip(t, tc.lean, tc.envoy)
			roundTrip(t, tc.envoy, tc.lean)
		})
	}
	t.Run("undeclared fields", func(t *testing.T) {
		full := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "s", TypeUrl: typeA,
			ControlPlane: &corev3.ControlPlane{Identifier: "istiod"},
			Resources: []*discoveryv3.Resource{{Name: "a", Ttl: durationpb.New(time.Second),
				CacheControl: &discoveryv3.Resource_CacheControl{DoNotCache: true}}}}
		b, err := proto.Marshal(full)
		if err != nil {
			t.Fatal(err)
		}
		lean := &Response{}
		if err := proto.Unmarshal(b, lean); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, lean, full)
	})
}

// roundTrip checks that from, encoded and decoded as want's type, equals want.
func roundTrip(t *testing.T, from, want proto.Message) {
	t.Helper()
	b, err := proto.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	got := want.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("%T decoded as %T = %v, want %v", from, want, got, want)
	}
}

// TestStreamSpeaksEnvoyADS runs the client against a gRPC server that knows only
// Envoy's types: the method, content type and messages must be Envoy's.
func TestStreamSpeaksEnvoyADS(t *testing.T) {
	payload, err := anypb.New(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		method, contentType string
		sub                 *discoveryv3.DeltaDiscoveryRequest
		ack                 *discoveryv3.DeltaDiscoveryRequest
	}
	got := make(chan seen, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		var s seen
		s.method, _ = grpc.MethodFromServerStream(ss)
		md, _ := metadata.FromIncomingContext(ss.Context())
		if ct := md.Get("content-type"); len(ct) == 1 {
			s.contentType = ct[0]
		}
		s.sub = &discoveryv3.DeltaDiscoveryRequest{}
		if err := ss.RecvMsg(s.sub); err != nil {
			return err
		}
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeA, Nonce: "n1",
			Resources: []*discoveryv3.Resource{{Name: "r1", Version: "v1", Resource: payload}}}
		if err := ss.SendMsg(resp); err != nil {
			return err
		}
		s.ack = &discoveryv3.DeltaDiscoveryRequest{}
		if err := ss.RecvMsg(s.ack); err != nil {
			return err
		}
		got <- s
		<-ss.Context().Done()
		return nil
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	h := &syncRecorder{}
	c := New(Config{Conn: conn, Node: &Node{Id: "ztunnel~n1", Cluster: "Kubernetes"}, TypeURLs: []string{typeA},
		Handler: h, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	var s seen
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no exchange")
	}
	wantSub := &discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "ztunnel~n1", Cluster: "Kubernetes"},
		TypeUrl: typeA, ResourceNamesSubscribe: []string{"*"}}
	wantAck := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeA, ResponseNonce: "n1"}
	switch {
	case s.method != "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources":
		t.Errorf("method = %q", s.method)
	case s.contentType != "application/grpc":
		t.Errorf("content-type = %q, want application/grpc", s.contentType)
	case !proto.Equal(s.sub, wantSub):
		t.Errorf("subscription = %v, want %v", s.sub, wantSub)
	case !proto.Equal(s.ack, wantAck):
		t.Errorf("ack = %v, want %v", s.ack, wantAck)
	}
	rs := h.resources()
	if len(rs) != 1 || rs[0].GetName() != "r1" || rs[0].GetVersion() != "v1" || !proto.Equal(rs[0].GetResource(), payload) {
		t.Errorf("handler got %v", rs)
	}
	<-c.Synced()
}

// syncRecorder is a Handler safe to read from the test goroutine.
type syncRecorder struct {
	mu sync.Mutex
	rs []*Resource
}

func (h *syncRecorder) Apply(_ string, upserts []*Resource, _ []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(upserts) == 0 {
		return errors.New("empty push")
	}
	h.rs = append(h.rs, upserts...)
	return nil
}

func (h *syncRecorder) resources() []*Resource {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rs
}
