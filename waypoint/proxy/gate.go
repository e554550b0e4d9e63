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

// connSlot is an upstream connection slot held by an attempt on an HTTP/1.1
// cluster; the zero value holds nothing (HTTP/2 clusters).
type connSlot struct {
	cl *config.Cluster
	g  *gate
}

// release frees the slot and wakes the requests waiting for one. Call it once.
func (s connSlot) release() {
	if s.cl != nil {
		s.cl.Breaker.DoneConnection()
		s.g.signal()
	}
}

// acquireConnection takes an upstream connection slot of an HTTP/1.1 cluster, where,
// as in Envoy's HTTP/1.1 pool, every active request holds one connection: within
// max_connections it proceeds at once; beyond, it waits as a pending request (within
// max_pending_requests, else errOverflow) until a slot frees or ctx ends. HTTP/2
// clusters multiplex requests on few connections and are limited by max_requests only.
// It allocates nothing when a slot is free.
func (p *Proxy) acquireConnection(ctx context.Context, cl *config.Cluster) (connSlot, error) {
	if cl.HTTP2 {
		return connSlot{}, nil
	}
	g := p.gate(cl.Name)
	if cl.Breaker.TryConnection() {
		return connSlot{cl: cl, g: g}, nil
	}
	prel, ok := cl.Breaker.Pending()
	if !ok {
		return connSlot{}, errOverflow
	}
	defer prel()
	for {
		w := g.wait()
		if cl.Breaker.TryConnection() {
			return connSlot{cl: cl, g: g}, nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return connSlot{}, ctx.Err()
		}
	}
}
