package proxy

import (
	"context"
	"sync"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// gate wakes requests waiting for a cluster's connection slot.
type gate struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next signal.
func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *gate) signal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (p *Proxy) gate(cluster string) *gate {
	if v, ok := p.gates.Load(cluster); ok {
		return v.(*gate)
	}
	v, _ := p.gates.LoadOrStore(cluster, &gate{})
	return v.(*gate)
}

// acquireConnection takes an upstream connection slot of an HTTP/1.1 cluster, where,
// as in Envoy's HTTP/1.1 pool, every active request holds one connection: within
// max_connections it proceeds at once; beyond, it waits as a pending request (within
// max_pending_requests, else errOverflow) until a slot frees or ctx ends. HTTP/2
// clusters multiplex requests on few connections and are limited by max_requests only.
func (p *Proxy) acquireConnection(ctx context.Context, cl *config.Cluster) (func(), error) {
	if cl.HTTP2 {
		return func() {}, nil
	}
	g := p.gate(cl.Name)
	wrap := func(rel func()) func() {
		var once sync.Once
		return func() {
			once.Do(func() {
				rel()
				g.signal()
			})
		}
	}
	if rel, ok := cl.Breaker.Connection(); ok {
		return wrap(rel), nil
	}
	prel, ok := cl.Breaker.Pending()
	if !ok {
		return nil, errOverflow
	}
	defer prel()
	for {
		w := g.wait()
		if rel, ok := cl.Breaker.Connection(); ok {
			return wrap(rel), nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
