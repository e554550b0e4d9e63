package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// warmupCalls is how many calls the warm-up before a case's first round makes.
const warmupCalls = 200

// ztunnelCount is one ztunnel's connection counters, as its /metrics reports them.
type ztunnelCount struct {
	// inboundMTLS counts the mTLS connections it took in for the case's namespace
	// (reporter destination): HBONE arriving at the server's node.
	inboundMTLS float64
	// total counts every connection it opened, any namespace, either side.
	total float64
}

// verify warms the case up (certificates, connection pools) and checks from the
// ztunnels' metrics, and the waypoint's for l7, that its traffic takes the intended
// path. A benchmark of the wrong path is worse than none.
func (b *bench) verify(ctx context.Context, bc benchCase) error {
	before, err := b.ztunnelCounts(bc)
	if err != nil {
		return err
	}
	w := b.pairs[bc].waypoint
	var wBefore float64
	if w != nil {
		if wBefore, err = w.Requests(bc.namespace()); err != nil {
			return fmt.Errorf("verify %s: %w", bc, err)
		}
	}
	if _, err := b.fortio(ctx, bc, b.pairs[bc].url(), "-qps", "0", "-n", fmt.Sprint(warmupCalls), "-c", fmt.Sprint(b.cfg.conns)); err != nil {
		return fmt.Errorf("warm up %s: %w", bc, err)
	}
	after, err := b.ztunnelCounts(bc)
	if err != nil {
		return err
	}
	var viaWaypoint float64
	if w != nil {
		if viaWaypoint, err = waypointRequests(ctx, w, bc.namespace(), wBefore); err != nil {
			return fmt.Errorf("verify %s: %w", bc, err)
		}
	}
	if err := pathError(bc, before, after, viaWaypoint); err != nil {
		return fmt.Errorf("verify %s: %w", bc, err)
	}
	return nil
}

// waypointRequests is how many requests for namespace the waypoint counted since it
// counted before, waiting up to 5 s for the warm-up's calls to show (a request is
// counted as its response ends).
func waypointRequests(ctx context.Context, w *mesh.Waypoint, namespace string, before float64) (float64, error) {
	var n float64
	err := mesh.Poll(ctx, 5*time.Second, func() error {
		now, err := w.Requests(namespace)
		if err != nil {
			return err
		}
		if n = now - before; n < warmupCalls {
			return fmt.Errorf("waypoint counted %v requests of the warm-up's %d", n, warmupCalls)
		}
		return nil
	})
	if err != nil && n == 0 {
		return 0, err
	}
	return n, nil
}

// pathError judges the ztunnels' counters around a warm-up of the case:
//   - an ambient mode's traffic must arrive over mTLS at the ztunnel of the server's
//     node (node-b cross-node; node-a, which also sent it, same-node), and a node
//     hosting neither pod must see no connection at all (same-node: node-b);
//   - a waypoint mode's every warm-up call must have crossed the waypoint
//     (viaWaypoint: the requests it counted for the case's namespace meanwhile);
//   - any other mode's traffic must pass both ztunnels by (its load generators reach
//     the server directly, or only through the client forwarder on 127.0.0.1, which
//     reaches it only over TLS).
func pathError(bc benchCase, before, after map[string]ztunnelCount, viaWaypoint float64) error {
	ambient := spec(bc.mode).ambient
	if spec(bc.mode).waypoint && viaWaypoint < warmupCalls {
		return fmt.Errorf("the waypoint counted %v of the warm-up's %d requests; traffic bypassed it", viaWaypoint, warmupCalls)
	}
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
