package breaker

import (
	"fmt"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// allowed is the implemented subset of CircuitBreakers.
var allowed = &protoshape.AllowList{Fields: protoshape.Fields{
	"envoy.config.cluster.v3.CircuitBreakers": {"thresholds"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds": {"priority", "max_connections",
		"max_pending_requests", "max_requests", "max_retries"},
	"google.protobuf.UInt32Value": {"value"},
}}

func newBreaker(cb *clusterv3.CircuitBreakers) (*Breaker, error) {
	b := &Breaker{}
	b.connections.max = DefaultMaxConnections
	b.pending.max = DefaultMaxPendingRequests
	b.requests.max = DefaultMaxRequests
	b.retries.max = DefaultMaxRetries
	if cb == nil {
		return b, nil
	}
	if err := allowed.Check(cb, ""); err != nil {
		return nil, fmt.Errorf("circuit breakers: %w", err)
	}
	seen := false
	for i, t := range cb.GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return nil, fmt.Errorf("circuit breakers: %w thresholds[%d].priority %s", ErrUnsupported, i, t.GetPriority())
		}
		if seen {
			return nil, fmt.Errorf("circuit breakers: thresholds[%d]: duplicate DEFAULT priority", i)
		}
		seen = true
		set(&b.connections, t.GetMaxConnections())
		set(&b.pending, t.GetMaxPendingRequests())
		set(&b.requests, t.GetMaxRequests())
		set(&b.retries, t.GetMaxRetries())
	}
	return b, nil
}

func set(g *gauge, v *wrapperspb.UInt32Value) {
	if v != nil {
		g.max = int64(v.GetValue())
	}
}

// acquire takes one unit when below the limit. The returned release is
// idempotent.
func (g *gauge) acquire() (func(), bool) {
	if !g.take() {
		return func() {}, false
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			g.cur.Add(-1)
		}
	}, true
}

// take takes one unit when below the limit.
func (g *gauge) take() bool {
	if g.cur.Add(1) > g.max {
		g.cur.Add(-1)
		return false
	}
	return true
}

// active returns the units in use.
func (g *gauge) active() int64 { return g.cur.Load() }
