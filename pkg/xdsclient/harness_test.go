package xdsclient

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Test type URLs: go-control-plane's LinearCache serves any proto under any type URL.
const (
	typeA = "type.googleapis.com/test.A"
	typeB = "type.googleapis.com/test.B"
)

// controlPlane is a real go-control-plane delta server over gRPC on 127.0.0.1:0 with
// one LinearCache per test type, recording every request it receives.
type controlPlane struct {
	caches map[string]*cachev3.LinearCache
	g      *grpc.Server
	addr   string

	mu       sync.Mutex
	requests []*discoveryv3.DeltaDiscoveryRequest
}

func startControlPlane(t *testing.T, caches map[string]*cachev3.LinearCache) *controlPlane {
	t.Helper()
	cp := &controlPlane{caches: caches}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cachev3.Cache{},
	}
	for k, c := range caches {
		mux.Caches[k] = c
	}
	cp.g = grpc.NewServer(grpc.StreamInterceptor(cp.record))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.g, serverv3.NewServer(context.Background(), mux, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = cp.g.Serve(lis) }()
	t.Cleanup(func() { cp.g.Stop(); <-done })
	return cp
}

func newCache(typeURL string) *cachev3.LinearCache {
	return cachev3.NewLinearCache(typeURL, cachev3.WithLogger(log.LoggerFuncs{}))
}

func (cp *controlPlane) record(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &recordingStream{ServerStream: ss, cp: cp})
}

type recordingStream struct {
	grpc.ServerStream
	cp *controlPlane
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if r, ok := m.(*discoveryv3.DeltaDiscoveryRequest); ok && err == nil {
		s.cp.mu.Lock()
		s.cp.requests = append(s.cp.requests, proto.Clone(r).(*discoveryv3.DeltaDiscoveryRequest))
		s.cp.mu.Unlock()
	}
	return err
}

func (cp *controlPlane) received() []*discoveryv3.DeltaDiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.requests)
}

// dial returns a connection whose dialer follows *addr, so a test can move the server.
func dial(t *testing.T, addr *atomic.Pointer[string]) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///control-plane",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond}}),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", *addr.Load())
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// call is one Handler.Apply invocation.
type call struct {
	typeURL string
	upserts []string
	removed []string
}

// store is a Handler holding resources per type, with an optional veto.
type store struct {
	reject func(typeURL string, upserts []*discoveryv3.Resource) error

	mu    sync.Mutex
	calls []call
	state map[string]map[string]string // type -> name -> version
}

func newStore() *store { return &store{state: map[string]map[string]string{}} }

func (s *store) Apply(typeURL string, upserts []*discoveryv3.Resource, removed []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := call{typeURL: typeURL, removed: slices.Sorted(slices.Values(removed))}
	for _, r := range upserts {
		c.upserts = append(c.upserts, r.GetName())
	}
	slices.Sort(c.upserts)
	s.calls = append(s.calls, c)
	if s.reject != nil {
		if err := s.reject(typeURL, upserts); err != nil {
			return err
		}
	}
	if s.state[typeURL] == nil {
		s.state[typeURL] = map[string]string{}
	}
	for _, r := range upserts {
		s.state[typeURL][r.GetName()] = r.GetVersion()
	}
	for _, n := range removed {
		delete(s.state[typeURL], n)
	}
	return nil
}

func (s *store) snapshot() ([]call, map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string][]string{}
	for t, m := range s.state {
		for n := range m {
			names[t] = append(names[t], n)
		}
		slices.Sort(names[t])
	}
	return slices.Clone(s.calls), names
}

// eventually polls cond every few milliseconds until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runClient runs c until the test ends and waits for Run to return.
func runClient(t *testing.T, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// dialNowhere returns a lazily connecting conn that is never used.
func dialNowhere(t *testing.T) *grpc.ClientConn {
	addr := "127.0.0.1:1"
	var p atomic.Pointer[string]
	p.Store(&addr)
	return dial(t, &p)
}
