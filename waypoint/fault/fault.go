// Package fault compiles Envoy's HTTP fault-injection filter configuration
// (envoy.extensions.filters.http.fault.v3.HTTPFault) into a Policy that decides,
// per request, whether to delay and/or abort it, as Envoy's fault filter does
// for the fixed-delay and HTTP-status-abort subset istiod-lite emits.
package fault

import (
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by Compile when the configuration sets a field the
// engine does not implement; the error text names the field. It is
// protoshape.ErrUnsupported, shared by every waypoint package.
var ErrUnsupported = protoshape.ErrUnsupported

// Policy is a compiled fault configuration. A nil *Policy injects nothing.
type Policy struct {
	delay       time.Duration
	delayPerM   uint64 // probability of a delay, parts per million
	abortStatus int
	abortPerM   uint64 // probability of an abort, parts per million
}

// Decision is the outcome for one request: Delay before forwarding (0: none)
// and AbortStatus, the HTTP status to answer instead of forwarding (0: none).
type Decision struct {
	Delay       time.Duration
	AbortStatus int
}

// Compile validates f and returns its Policy. Supported: delay.fixed_delay and
// abort.http_status, each with a percentage whose denominator is HUNDRED,
// TEN_THOUSAND or MILLION. Any other set field is rejected with ErrUnsupported;
// a nil f yields a nil Policy (no faults).
func Compile(f *faultv3.HTTPFault) (*Policy, error) {
	return compile(f)
}

// Decide draws the delay and abort decisions independently, each with one call
// to rnd (a uniform random uint64), as Envoy evaluates its delay and abort
// percentages separately. A nil Policy never injects.
func (p *Policy) Decide(rnd func() uint64) Decision {
	if p == nil || rnd == nil {
		return Decision{}
	}
	var d Decision
	if p.delayPerM > 0 && rnd()%1_000_000 < p.delayPerM {
		d.Delay = p.delay
	}
	if p.abortPerM > 0 && rnd()%1_000_000 < p.abortPerM {
		d.AbortStatus = p.abortStatus
	}
	return d
}
