// Package route compiles an Envoy RouteConfiguration (RDS) into a Table that
// matches HTTP requests to routes with Envoy's semantics, for the subset of
// fields istiod-lite emits from HTTPRoute and VirtualService (F-WP-4, F-WP-5):
// path/header/query matches, weighted clusters, timeouts, retries, mirrors,
// rewrites, redirects, header mutations and per-route fault injection.
// Every other field set in the configuration is rejected at Compile time.
package route

import (
	"math"
	"net/http"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/ambitmesh/ambit/waypoint/fault"
	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by Compile when the configuration sets a field the
// engine does not implement; the error text names the route and the field,
// e.g. `route "x": unsupported field route.hash_policy`. It is the same value
// as protoshape.ErrUnsupported (shared by every waypoint package), so
// per-route fault errors match it too.
var ErrUnsupported = protoshape.ErrUnsupported

// FaultFilterName is the typed_per_filter_config key of per-route faults.
const FaultFilterName = "envoy.filters.http.fault"

// OriginalPathHeader carries the client's path when a route rewrites it, as
// Envoy's x-envoy-original-path.
const OriginalPathHeader = "X-Envoy-Original-Path"

// Table is a compiled RouteConfiguration. Immutable; safe for concurrent use.
type Table struct {
	// Name is the RouteConfiguration's name.
	Name  string
	hosts []*virtualHost
}

// Route is the action of one matched route. Name is the route's name (the
// access log's %ROUTE_NAME%). Backends lists the weighted clusters (a single
// cluster has weight 1) and is empty iff Redirect is set. Timeout is the
// whole-request timeout: 0 means none, DefaultTimeout when the field is
// unset. Retry nil means no retries; Mirrors lists request_mirror_policies;
// Fault is the per-route fault policy (nil: none). Immutable once compiled.
type Route struct {
	Name     string
	Backends []Backend
	Redirect *Redirect
	Timeout  time.Duration
	Retry    *Retry
	Mirrors  []Mirror
	Fault    *fault.Policy

	match    matcher
	rewrite  rewrite
	reqHdrs  headerOps
	respHdrs headerOps
	total    uint64 // sum of backend weights
}

// Backend is one upstream cluster of a route with its relative weight.
type Backend struct {
	Cluster string
	Weight  uint32
}

// Mirror is a request_mirror_policy: a copy of each sampled request goes to
// Cluster; Fraction is the sampled share in [0, 1].
type Mirror struct {
	Cluster  string
	Fraction float64
}

// Compile validates rc and builds its Table. Errors wrap ErrUnsupported for
// fields the engine does not implement and name the offending route.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	return compile(rc)
}

// Match returns the first route, in configuration order, whose match
// accepts r, within the virtual host selected by r.Host as Envoy selects it
// (exact domain, then longest "*.suffix", then longest "prefix.*", then
// "*"). It returns nil when no route matches (the caller answers 404, as
// Envoy's router).
func (t *Table) Match(r *http.Request) *Route {
	if t == nil || r == nil || r.URL == nil {
		return nil
	}
	vh := t.selectHost(lowerASCII(r.Host))
	if vh == nil {
		return nil
	}
	full := requestPath(r)
	for _, rt := range vh.routes {
		if rt.match.matches(r, full) {
			return rt
		}
	}
	return nil
}

func (t *Table) selectHost(host string) *virtualHost {
	for _, vh := range t.hosts {
		for _, d := range vh.exact {
			if d == host {
				return vh
			}
		}
	}
	var best *virtualHost
	bestLen := -1
	for _, vh := range t.hosts {
		for _, s := range vh.suffixes {
			if len(host) > len(s) && strings.HasSuffix(host, s) && len(s) > bestLen {
				best, bestLen = vh, len(s)
			}
		}
	}
	if best != nil {
		return best
	}
	for _, vh := range t.hosts {
		for _, p := range vh.prefixes {
			if len(host) > len(p) && strings.HasPrefix(host, p) && len(p) > bestLen {
				best, bestLen = vh, len(p)
			}
		}
	}
	if best != nil {
		return best
	}
	for _, vh := range t.hosts {
		if vh.any {
			return vh
		}
	}
	return nil
}

// Pick chooses a backend cluster by weight from n, a uniform random number:
// the cluster whose cumulative weight range holds n mod the total weight, as
// Envoy's weighted_clusters. It returns "" for a redirect route.
func (rt *Route) Pick(n uint64) string {
	if rt == nil || len(rt.Backends) == 0 {
		return ""
	}
	if rt.total == 0 {
		return rt.Backends[0].Cluster
	}
	v := n % rt.total
	for _, b := range rt.Backends {
		if v < uint64(b.Weight) {
			return b.Cluster
		}
		v -= uint64(b.Weight)
	}
	return rt.Backends[len(rt.Backends)-1].Cluster
}

// Sampled reports whether the request drawn with uniform random n is mirrored.
func (m Mirror) Sampled(n uint64) bool {
	if m.Fraction <= 0 {
		return false
	}
	if m.Fraction >= 1 {
		return true
	}
	return n%1_000_000 < uint64(math.Round(m.Fraction*1_000_000))
}
