package main

import (
	"context"
	"fmt"

	"github.com/ambitmesh/ambit/bench/measure"
)

// ztunnelCount is one ztunnel's connection counters, as its /metrics reports them.
type ztunnelCount struct {
	// inboundMTLS counts the mTLS connections it took in for the case's namespace
	// (reporter destination): HBONE arriving at the server's node.
	inboundMTLS float64
	// total counts every connection it opened, any namespace, either side.
	total float64
}

// verify warms the case up (certificates, connection pools) and checks from the
// ztunnels' metrics that its traffic takes the intended path. A benchmark of the wrong
// path is worse than none.
func (b *bench) verify(ctx context.Context, bc benchCase) error {
	before, err := b.ztunnelCounts(bc)
	if err != nil {
		return err
	}
	if _, err := b.fortio(ctx, bc, b.pairs[bc].url(), "-qps", "0", "-n", "200", "-c", fmt.Sprint(b.cfg.conns)); err != nil {
		return fmt.Errorf("warm up %s: %w", bc, err)
	}
	after, err := b.ztunnelCounts(bc)
	if err != nil {
		return err
	}
	if err := pathError(bc, before, after); err != nil {
		return fmt.Errorf("verify %s: %w", bc, err)
	}
	return nil
}

// pathError judges the ztunnels' counters around a warm-up of the case:
//   - an ambient mode's traffic must arrive over mTLS at the ztunnel of the server's
//     node (node-b cross-node; node-a, which also sent it, same-node), and a node
//     hosting neither pod must see no connection at all (same-node: node-b);
//   - any other mode's traffic must pass both ztunnels by (its load generators reach
//     the server directly, or only through the client forwarder on 127.0.0.1, which
//     reaches it only over TLS).
func pathError(bc benchCase, before, after map[string]ztunnelCount) error {
	ambient := spec(bc.mode).ambient
	for _, n := range ztunnelNodes {
		d := ztunnelCount{after[n].inboundMTLS - before[n].inboundMTLS, after[n].total - before[n].total}
		onPath := n == clientNode || n == bc.serverNode()
		switch {
		case !ambient && d.total != 0:
			return fmt.Errorf("ztunnel %s counted %v new connections, want none (the mode must bypass the mesh)", n, d.total)
		case ambient && !onPath && d.total != 0:
			return fmt.Errorf("ztunnel %s, which hosts neither pod, counted %v new connections", n, d.total)
		case ambient && n == bc.serverNode() && d.inboundMTLS == 0:
			return fmt.Errorf("ztunnel %s (the server's node) counted no new inbound mTLS connection for %s; traffic bypassed the mesh",
				n, bc.namespace())
		}
	}
	return nil
}

// ztunnelCounts reads both ztunnels' counters for the case's namespace.
func (b *bench) ztunnelCounts(bc benchCase) (map[string]ztunnelCount, error) {
	out := map[string]ztunnelCount{}
	for _, n := range ztunnelNodes {
		text, err := b.m.Metrics(n)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", bc, err)
		}
		const family = "istio_tcp_connections_opened_total"
		total, err := measure.CounterSum(text, family, nil)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", bc, err)
		}
		in, err := measure.CounterSum(text, family, map[string]string{"reporter": "destination",
			"connection_security_policy": "mutual_tls", "destination_workload_namespace": bc.namespace()})
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", bc, err)
		}
		out[n] = ztunnelCount{inboundMTLS: in, total: total}
	}
	return out, nil
}
