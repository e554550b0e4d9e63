package hbone

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// pool holds a client's connections by key (address + acceptable identities). New
// streams go to the first connection with a free slot; when none has one, exactly one
// caller dials while others for the same key wait for it (F-L4-5).
type pool struct {
	mu      sync.Mutex
	closed  bool
	conns   map[string][]*h2conn
	dialing map[string]*dialCall
}

type dialCall struct {
	done chan struct{}
	err  error
}

func poolKey(req Request) string {
	ids := make([]string, len(req.Identities))
	for i, id := range req.Identities {
		ids[i] = id.String()
	}
	slices.Sort(ids)
	return req.Address + "|" + strings.Join(ids, ",")
}

// get returns a connection with a reserved stream slot, dialing if needed.
func (p *pool) get(ctx context.Context, key string, max int, dial func(context.Context) (*h2conn, error)) (*h2conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClientClosed
		}
		for _, hc := range p.conns[key] {
			if hc.tryReserve(max) {
				p.mu.Unlock()
				return hc, nil
			}
		}
		if dc := p.dialing[key]; dc != nil {
			p.mu.Unlock()
			select {
			case <-dc.done:
				if dc.err != nil && !errors.Is(dc.err, context.Canceled) && !errors.Is(dc.err, context.DeadlineExceeded) {
					return nil, dc.err
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		dc := &dialCall{done: make(chan struct{})}
		if p.dialing == nil {
			p.dialing = make(map[string]*dialCall)
			p.conns = make(map[string][]*h2conn)
		}
		p.dialing[key] = dc
		p.mu.Unlock()

		hc, err := dial(ctx)
		p.mu.Lock()
		delete(p.dialing, key)
		closed := p.closed
		if err == nil && !closed {
			p.conns[key] = append(p.conns[key], hc)
		}
		p.mu.Unlock()
		if err == nil && closed {
			hc.close(ErrClientClosed)
			err = ErrClientClosed
		}
		dc.err = err
		close(dc.done)
		if err != nil {
			return nil, err
		}
	}
}

// track adds two goroutines of a new connection to wg unless the pool is closed.
func (p *pool) track(wg *sync.WaitGroup) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	wg.Add(2)
	return true
}

func (p *pool) remove(key string, hc *h2conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.conns[key]
	if i := slices.Index(conns, hc); i >= 0 {
		conns = slices.Delete(conns, i, i+1)
	}
	if len(conns) == 0 {
		delete(p.conns, key)
	} else {
		p.conns[key] = conns
	}
}

func (p *pool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, cs := range p.conns {
		n += len(cs)
	}
	return n
}

// closeAll marks the pool closed and returns its connections.
func (p *pool) closeAll() []*h2conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var all []*h2conn
	for _, cs := range p.conns {
		all = append(all, cs...)
	}
	return all
}

// releaseLocked frees a client stream slot. mu must be held.
func (c *h2conn) releaseLocked() bool {
	c.active--
	if c.active > 0 || c.closed {
		return false
	}
	if c.goAway {
		return true
	}
	if c.idleTimeout > 0 {
		if c.idleTimer != nil {
			c.idleTimer.Stop()
		}
		c.idleTimer = time.AfterFunc(c.idleTimeout, c.closeIfIdle)
	}
	return false
}

func (c *h2conn) closeIfIdle() {
	c.mu.Lock()
	idle := c.active == 0 && !c.closed
	if idle {
		c.goAway = true
	}
	c.mu.Unlock()
	if idle {
		c.goAwayClose(http2.ErrCodeNo, errIdle)
	}
}

// tryReserve takes a stream slot if the connection is usable and below both our limit
// and the peer's SETTINGS_MAX_CONCURRENT_STREAMS.
func (c *h2conn) tryReserve(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.goAway || c.active >= max || uint64(c.active) >= uint64(c.peerMaxStreams) {
		return false
	}
	c.active++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
		c.idleTimer = nil
	}
	return true
}

// unreserve returns a slot taken by tryReserve that was not used for a stream.
func (c *h2conn) unreserve() {
	c.mu.Lock()
	closeNow := c.releaseLocked()
	c.mu.Unlock()
	if closeNow {
		c.goAwayClose(http2.ErrCodeNo, errDrained)
	}
}
