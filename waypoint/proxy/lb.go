package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// balancer picks endpoints: round robin, least request (power of two choices, as
// Envoy's default choice_count 2) or random, over the hosts outlier detection leaves
// available.
type balancer struct {
	rr     sync.Map // cluster name -> *atomic.Uint64
	active sync.Map // destination -> *atomic.Int64 (requests in flight)
}

func newBalancer() *balancer { return &balancer{} }

func (b *balancer) counter(m *sync.Map, key string) any {
	if v, ok := m.Load(key); ok {
		return v
	}
	var v any
	if m == &b.rr {
		v = new(atomic.Uint64)
	} else {
		v = new(atomic.Int64)
	}
	v, _ = m.LoadOrStore(key, v)
	return v
}

// pick chooses an endpoint of cl; false when it has none.
func (b *balancer) pick(cl *config.Cluster, rnd func() uint64) (config.Endpoint, bool) {
	eps := cl.Endpoints
	if cl.Outlier != nil && len(eps) > 0 {
		hosts := make([]string, len(eps))
		for i, e := range eps {
			hosts[i] = e.Destination
		}
		avail := cl.Outlier.Available(hosts)
		if len(avail) != len(eps) {
			keep := make(map[string]bool, len(avail))
			for _, h := range avail {
				keep[h] = true
			}
			var out []config.Endpoint
			for _, e := range eps {
				if keep[e.Destination] {
					out = append(out, e)
				}
			}
			eps = out
		}
	}
	if len(eps) == 0 {
		return config.Endpoint{}, false
	}
	switch cl.LB {
	case config.Random:
		return eps[rnd()%uint64(len(eps))], true
	case config.LeastRequest:
		a := eps[rnd()%uint64(len(eps))]
		c := eps[rnd()%uint64(len(eps))]
		if b.inFlight(c.Destination).Load() < b.inFlight(a.Destination).Load() {
			return c, true
		}
		return a, true
	default:
		n := b.counter(&b.rr, cl.Name).(*atomic.Uint64).Add(1) - 1
		return eps[n%uint64(len(eps))], true
	}
}

func (b *balancer) inFlight(dst string) *atomic.Int64 {
	return b.counter(&b.active, dst).(*atomic.Int64)
}

// begin counts a request in flight to dst; Add(-1) on the returned counter ends it.
func (b *balancer) begin(dst string) *atomic.Int64 {
	c := b.inFlight(dst)
	c.Add(1)
	return c
}
