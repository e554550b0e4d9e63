package l7

import (
	"errors"
	"slices"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/types"
)

// attachVirtualServices gives each bound service without an HTTPRoute the routes of the
// oldest mesh VirtualService whose hosts name it (short name, name.namespace or FQDN).
func (ix *index) attachVirtualServices() {
	claimed := map[types.NamespacedName]string{}
	for _, vs := range ix.vss {
		st := ix.status.of(KindVirtualService, vs, "")
		spec := &vs.Spec
		if !appliesToMesh(spec.GetGateways()) {
			st.accepted.fail(ReasonUnsupportedValue, "only the mesh gateway is supported: gateways %v are not", spec.GetGateways())
			continue
		}
		if len(spec.GetTcp()) > 0 || len(spec.GetTls()) > 0 {
			st.accepted.fail(ReasonUnsupportedValue, "tcp and tls routes are not supported: ignored")
		}
		applied := false
		for _, h := range spec.GetHosts() {
			host, err := ix.resolveHost(h, vs.Namespace)
			if err != nil {
				st.accepted.fail(ReasonUnsupportedValue, "host %q: %v: ignored", h, err)
				continue
			}
			b := ix.boundByHost(host)
			self := vs.Namespace + "/" + vs.Name
			switch {
			case b == nil || claimed[key(b.svc)] == self:
				continue
			case b.hasHTTPRoute:
				st.accepted.fail(ReasonConflicted, "host %s: an HTTPRoute attached to the service takes precedence", host)
				continue
			case claimed[key(b.svc)] != "":
				st.accepted.fail(ReasonConflicted, "host %s: the older VirtualService %s routes it", host, claimed[key(b.svc)])
				continue
			}
			claimed[key(b.svc)] = self
			applied = true
			for _, p := range b.model.Ports {
				if isHTTP(p.Protocol) {
					c := &vsConverter{ix: ix, vs: vs, st: st, port: p.Number, fallback: Backend{Hostname: host, Port: p.Number}}
					b.vsRoutes[p.Number] = c.routes()
				}
			}
		}
		if !applied {
			st.accepted.fail(ReasonNoMatchingParent, "no host names a service served by a waypoint")
		}
	}
}

// boundByHost finds the bound service of an FQDN.
func (ix *index) boundByHost(host string) *boundService {
	svc := ix.byHost[host]
	if svc == nil {
		return nil
	}
	return ix.bound[key(svc)]
}

// appliesToMesh reports whether a VirtualService's gateways include the mesh (an empty
// list means the mesh).
func appliesToMesh(gateways []string) bool {
	return len(gateways) == 0 || slices.Contains(gateways, "mesh")
}

// vsConverter translates a VirtualService's http routes for one port of one service.
type vsConverter struct {
	ix       *index
	vs       *networkingv1.VirtualService
	st       *objectState
	port     uint32
	fallback Backend
}

// routes translates http[] in order, one route per match that applies to the port.
func (c *vsConverter) routes() []Route {
	var out []Route
	for i, h := range c.vs.Spec.GetHttp() {
		if h == nil {
			continue
		}
		action, rw, err := c.action(i, h)
		if err != nil {
			c.st.accepted.fail(ReasonUnsupportedValue, "http[%d]: %v: its requests get 500", i, err)
		}
		matches := h.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingv1alpha3.HTTPMatchRequest{nil}
		}
		for j, m := range matches {
			if m.GetPort() != 0 && m.GetPort() != c.port {
				continue
			}
			match, prefix, merr := vsMatch(m)
			if merr != nil {
				c.st.accepted.fail(ReasonUnsupportedValue, "http[%d].match[%d]: %v: match dropped", i, j, merr)
				continue
			}
			r := cloneRoute(action)
			r.Name, r.Match = routeName(KindVirtualService, c.vs.Namespace, c.vs.Name, i, j), match
			ferr := err
			if ferr == nil {
				ferr = rw.apply(&r, prefix)
			}
			if ferr != nil {
				if err == nil {
					c.st.accepted.fail(ReasonUnsupportedValue, "http[%d].match[%d]: %v: its requests get 500", i, j, ferr)
				}
				failRoute(&r, c.fallback)
			}
			out = append(out, r)
		}
	}
	return out
}

// uriRewrite is a VirtualService rewrite.uri or redirect.prefixRewrite, whose meaning
// depends on each match.
type uriRewrite struct {
	rewrite        string
	hasRewrite     bool
	redirectPrefix string
}

var errPrefixRewrite = errors.New("a prefix rewrite needs a uri prefix match (without ignoreUriCase)")

// uriPrefix tells whether a VirtualService match was a uri prefix match.
type uriPrefix int

const (
	notPrefix    uriPrefix = iota
	plainPrefix            // uri.prefix: a PathRaw match
	foldedPrefix           // uri.prefix with ignoreUriCase: a regex match
)

// apply sets the path rewrite of r for its match: rewrite.uri replaces the matched
// prefix after a uri prefix match (or "/" without a uri match, as Istio does), the whole
// path otherwise; redirect.prefixRewrite needs a prefix match.
func (u uriRewrite) apply(r *Route, prefix uriPrefix) error {
	if !u.hasRewrite && u.redirectPrefix == "" {
		return nil
	}
	if prefix == foldedPrefix {
		return errPrefixRewrite
	}
	asPrefix := prefix == plainPrefix || r.Match.Path.Kind == PathAny
	if asPrefix && r.Match.Path.Kind == PathAny {
		r.Match.Path = PathMatch{Kind: PathRaw, Value: "/"}
	}
	if u.hasRewrite {
		if asPrefix {
			r.Rewrite.PrefixRewrite, r.Rewrite.PrefixSet = u.rewrite, true
		} else {
			r.Rewrite.Path = u.rewrite
		}
	}
	if u.redirectPrefix != "" {
		if !asPrefix {
			return errPrefixRewrite
		}
		r.Redirect.PrefixRewrite = u.redirectPrefix
	}
	return nil
}
