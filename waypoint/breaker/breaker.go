// Package breaker implements Envoy's cluster circuit breakers for the DEFAULT
// priority: concurrent limits on connections, pending requests, active
// requests and active retries. An attempt over a limit fails immediately; the
// caller answers 503 with x-envoy-overloaded: true, as Envoy does.
package breaker

import (
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by New when the configuration sets a field the
// engine does not implement; the error text names the field. It is
// protoshape.ErrUnsupported, shared by every waypoint package.
var ErrUnsupported = protoshape.ErrUnsupported

// Envoy's defaults for a DEFAULT-priority threshold whose field is unset.
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Breaker holds the live counters of one cluster. Safe for concurrent use. A
// nil *Breaker admits everything.
type Breaker struct {
	connections, pending, requests, retries gauge
}

// gauge is one limit and its live count.
type gauge struct {
	max int64
	cur atomic.Int64
}

// New builds a Breaker from cb; nil or absent thresholds use Envoy's defaults
// (1024 connections, pending and requests; 3 retries).
func New(cb *clusterv3.CircuitBreakers) (*Breaker, error) {
	return newBreaker(cb)
}

// Request reserves an active request (max_requests). ok is false, and release
// a no-op, when the limit is reached; otherwise call release once the request
// ends (extra calls are ignored).
func (b *Breaker) Request() (release func(), ok bool) { return b.limit(kindRequests).acquire() }

// Pending reserves a pending request waiting for a connection
// (max_pending_requests), with Request's contract.
func (b *Breaker) Pending() (release func(), ok bool) { return b.limit(kindPending).acquire() }

// Connection reserves an upstream connection (max_connections), with
// Request's contract.
func (b *Breaker) Connection() (release func(), ok bool) { return b.limit(kindConnections).acquire() }

// Retry reserves a concurrent retry (max_retries), with Request's contract.
func (b *Breaker) Retry() (release func(), ok bool) { return b.limit(kindRetries).acquire() }

// TryRequest reserves an active request like Request, without allocating: true
// obliges the caller to call DoneRequest exactly once.
func (b *Breaker) TryRequest() bool { return b.tryLimit(kindRequests) }

// DoneRequest releases a reservation of TryRequest.
func (b *Breaker) DoneRequest() { b.doneLimit(kindRequests) }

// TryConnection reserves an upstream connection like Connection, without
// allocating: true obliges the caller to call DoneConnection exactly once.
func (b *Breaker) TryConnection() bool { return b.tryLimit(kindConnections) }

// DoneConnection releases a reservation of TryConnection.
func (b *Breaker) DoneConnection() { b.doneLimit(kindConnections) }

func (b *Breaker) tryLimit(k kind) bool {
	if b == nil {
		return true
	}
	return b.limit(k).take()
}

func (b *Breaker) doneLimit(k kind) {
	if b != nil {
		b.limit(k).cur.Add(-1)
	}
}

// Active returns the reservations currently held as (connections, pending,
// requests, retries), for metrics and tests.
func (b *Breaker) Active() (connections, pending, requests, retries int64) {
	if b == nil {
		return 0, 0, 0, 0
	}
	return b.connections.active(), b.pending.active(), b.requests.active(), b.retries.active()
}

type kind int

const (
	kindConnections kind = iota
	kindPending
	kindRequests
	kindRetries
)

// limit returns the gauge of kind k; a nil Breaker gets a fresh unlimited one.
func (b *Breaker) limit(k kind) *gauge {
	if b == nil {
		return &gauge{max: 1 << 62}
	}
	switch k {
	case kindConnections:
		return &b.connections
	case kindPending:
		return &b.pending
	case kindRequests:
		return &b.requests
	default:
		return &b.retries
	}
}
