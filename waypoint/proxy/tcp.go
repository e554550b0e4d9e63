package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// errNoHealthyUpstream: the cluster has no available endpoint.
var errNoHealthyUpstream = errors.New("no healthy upstream")

// connectTCP serves a tcp_proxy chain: it opens the upstream tunnel first (so the
// downstream sees 200 only after the upstream connected, as ztunnel) and pipes bytes.
func (p *Proxy) connectTCP(ctx context.Context, cfg *config.Config, ch *config.Chain, info *connInfo) (net.Conn, error) {
	cl := cfg.Clusters[ch.TCPCluster]
	if cl == nil {
		return nil, fmt.Errorf("chain %s: cluster %s: %w", ch.Name, ch.TCPCluster, errNoHealthyUpstream)
	}
	ep, ok := p.lb.pick(cl, p.rnd)
	if !ok {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, errNoHealthyUpstream)
	}
	release, ok := cl.Breaker.Connection()
	if !ok {
		return nil, fmt.Errorf("cluster %s: connection limit reached", cl.Name)
	}
	dctx, cancel := context.WithTimeout(ctx, cl.ConnectTimeout)
	up, err := p.up.dial(dctx, ep.Address, ep.Destination, nil)
	cancel()
	if cl.Outlier != nil {
		status := 200
		if err != nil {
			status = 503
		}
		cl.Outlier.Report(ep.Destination, status, err != nil)
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("tcp proxy %s: %w", ch.Name, err)
	}
	a, b, err := socketPair()
	if err != nil {
		release()
		up.Close()
		return nil, err
	}
	ok = p.spawn(func() {
		defer release()
		// ctx ends with the stream (or the server): unblock both copies.
		stop := context.AfterFunc(ctx, func() {
			b.Close()
			up.Close()
		})
		defer stop()
		pipe(b, up)
	})
	if !ok {
		release()
		a.Close()
		b.Close()
		up.Close()
		return nil, net.ErrClosed
	}
	_ = info
	return a, nil
}
