package breaker

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fill acquires until refused and returns the count and the releases.
func fill(acquire func() (func(), bool)) (int, []func()) {
	var rel []func()
	for len(rel) < 100_000 {
		r, ok := acquire()
		if !ok {
			return len(rel), rel
		}
		rel = append(rel, r)
	}
	return len(rel), rel
}

func TestLimits(t *testing.T) {
	custom := &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(2),
		MaxPendingRequests: wrapperspb.UInt32(0),
		MaxRequests:        wrapperspb.UInt32(5),
	}}}
	tests := []struct {
		name                              string
		cb                                *clusterv3.CircuitBreakers
		conns, pending, requests, retries int
	}{
		{name: "nil config: Envoy defaults", cb: nil, conns: 1024, pending: 1024, requests: 1024, retries: 3},
		{name: "empty thresholds: defaults", cb: &clusterv3.CircuitBreakers{}, conns: 1024, pending: 1024, requests: 1024, retries: 3},
		{name: "custom, unset retries default", cb: custom, conns: 2, pending: 0, requests: 5, retries: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.cb)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what    string
				acquire func() (func(), bool)
				want    int
			}{
				{"connections", b.Connection, tc.conns},
				{"pending", b.Pending, tc.pending},
				{"requests", b.Request, tc.requests},
				{"retries", b.Retry, tc.retries},
			} {
				n, rel := fill(c.acquire)
				if n != c.want {
					t.Errorf("%s: admitted %d, want %d", c.what, n, c.want)
				}
				if len(rel) > 0 {
					rel[0]()
					rel[0]() // a second release is ignored
					if _, ok := c.acquire(); !ok {
						t.Errorf("%s: refused after a release", c.what)
					}
					if _, ok := c.acquire(); ok {
						t.Errorf("%s: double release freed two slots", c.what)
					}
				}
			}
		})
	}
}

func TestActiveAndNil(t *testing.T) {
	b, _ := New(nil)
	r1, _ := b.Request()
	r2, _ := b.Retry()
	if _, _, req, ret := b.Active(); req != 1 || ret != 1 {
		t.Fatalf("active %d %d", req, ret)
	}
	r1()
	r2()
	if c, p, req, ret := b.Active(); c+p+req+ret != 0 {
		t.Fatal("not released")
	}
	var none *Breaker
	if _, ok := none.Request(); !ok {
		t.Fatal("nil breaker refused")
	}
}

func TestConcurrentNeverExceeds(t *testing.T) {
	b, err := New(&clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(3)}}})
	if err != nil {
		t.Fatal(err)
	}
	var inside, peak atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				release, ok := b.Request()
				if !ok {
					continue
				}
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inside.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 3 {
		t.Fatalf("peak %d concurrent requests, limit 3", peak.Load())
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name        string
		cb          *clusterv3.CircuitBreakers
		want        string
		unsupported bool
	}{
		{name: "high priority", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{Priority: corev3.RoutingPriority_HIGH}}},
			want: "priority HIGH", unsupported: true},
		{name: "retry budget", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}}}}, want: "thresholds[0].retry_budget", unsupported: true},
		{name: "per host", cb: &clusterv3.CircuitBreakers{PerHostThresholds: []*clusterv3.CircuitBreakers_Thresholds{{}}},
			want: "per_host_thresholds", unsupported: true},
		{name: "duplicate", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}, {}}}, want: "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Fatalf("ErrUnsupported mismatch: %v", err)
			}
		})
	}
}

// TestTryDone: the allocation-free reservations share the limits and counters of
// Request and Connection.
func TestTryDone(t *testing.T) {
	b, err := New(&clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1), MaxRequests: wrapperspb.UInt32(2),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		try    func() bool
		done   func()
		legacy func() (func(), bool)
		limit  int
	}{
		{"requests", b.TryRequest, b.DoneRequest, b.Request, 2},
		{"connections", b.TryConnection, b.DoneConnection, b.Connection, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.limit {
				if !tc.try() {
					t.Fatalf("reservation %d refused", i)
				}
			}
			if tc.try() {
				t.Fatal("reservation over the limit admitted")
			}
			if _, ok := tc.legacy(); ok {
				t.Fatal("legacy reservation over the limit admitted")
			}
			tc.done()
			rel, ok := tc.legacy()
			if !ok {
				t.Fatal("slot not freed by Done")
			}
			rel()
			for range tc.limit - 1 {
				tc.done()
			}
			if c, _, r, _ := b.Active(); c != 0 || r != 0 {
				t.Fatalf("active connections %d requests %d after release", c, r)
			}
		})
	}
	var nilB *Breaker
	if !nilB.TryRequest() || !nilB.TryConnection() {
		t.Fatal("nil breaker refused")
	}
	nilB.DoneRequest()
	nilB.DoneConnection()
	if n := testing.AllocsPerRun(100, func() {
		if b.TryRequest() {
			b.DoneRequest()
		}
	}); n != 0 {
		t.Fatalf("TryRequest/DoneRequest allocate %v times", n)
	}
}
