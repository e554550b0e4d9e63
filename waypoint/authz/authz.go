// Package authz evaluates Envoy's RBAC HTTP filter
// (envoy.extensions.filters.http.rbac.v3.RBAC with envoy.config.rbac.v3 rules)
// for the subset of permissions and principals istiod-lite emits from Istio
// AuthorizationPolicy (F-SEC-4). Anything outside that subset is rejected at
// Compile time so a policy is never silently weakened (fail closed).
package authz

import (
	"net/http"

	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by Compile when the configuration sets a field the
// engine does not implement; the error text names the field. It is the same
// value as protoshape.ErrUnsupported and route.ErrUnsupported (header and
// string matchers are compiled by package route).
var ErrUnsupported = protoshape.ErrUnsupported

// PeerPrincipalKey is the only filter-state key principals may match on: the
// peer's SPIFFE URI, set by the HBONE terminator as Istio's waypoint does.
const PeerPrincipalKey = "io.istio.peer_principal"

// Request is the view of one HTTP request the filter evaluates. Path is the
// request target (query included; url_path matches strip it), Host the
// :authority, DestinationPort the original destination port of the stream,
// PeerPrincipal the peer's SPIFFE URI ("" when unauthenticated).
type Request struct {
	Method          string
	Path            string
	Host            string
	Headers         http.Header
	DestinationPort uint32
	PeerPrincipal   string
}

// Filter is a compiled RBAC filter. A nil *Filter allows everything (no filter
// configured).
type Filter struct {
	deny     bool // action DENY; otherwise ALLOW
	policies []policy
}

// Compile validates r and returns its Filter. Supported actions: ALLOW, DENY;
// a filter without rules allows all, as Envoy's. Unsupported fields are
// rejected with an error naming them that wraps ErrUnsupported.
func Compile(r *rbacv3filter.RBAC) (*Filter, error) {
	return compile(r)
}

// Allowed reports whether req passes the filter, as Envoy's RBAC filter: with
// action ALLOW iff some policy matches, with action DENY iff none matches.
// Denied requests are answered 403 "RBAC: access denied" by the caller.
func (f *Filter) Allowed(req *Request) bool {
	if f == nil {
		return true
	}
	if req == nil {
		return false
	}
	matched := false
	for i := range f.policies {
		if f.policies[i].matches(req) {
			matched = true
			break
		}
	}
	if f.deny {
		return !matched
	}
	return matched
}
