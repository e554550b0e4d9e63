package l7

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// routeEntry is one HTTPRoute (rule, match) translated for one service port, with its
// Gateway API precedence.
type routeEntry struct {
	prec  precedence
	route Route
}

// attachHTTPRoutes translates every HTTPRoute parentRef that names a Service (group "",
// kind Service) or a waypoint Gateway, and records its route-parent status.
func (ix *index) attachHTTPRoutes() {
	for _, hr := range ix.httpRoutes {
		seen := map[string]bool{}
		for _, pr := range hr.Spec.ParentRefs {
			ix.attachHTTPRoute(hr, pr, seen)
		}
	}
}

func (ix *index) attachHTTPRoute(hr *gatewayv1.HTTPRoute, pr gatewayv1.ParentReference, seen map[string]bool) {
	group, kind := gatewayv1.GroupName, "Gateway"
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		kind = string(*pr.Kind)
	}
	ns := hr.Namespace
	if pr.Namespace != nil && *pr.Namespace != "" {
		ns = string(*pr.Namespace)
	}
	ref := types.NamespacedName{Namespace: ns, Name: string(pr.Name)}
	switch {
	case (group == "" || group == "core") && kind == "Service":
	case group == gatewayv1.GroupName && kind == "Gateway" && ix.gateways[ref] != nil:
		st := ix.status.of(KindHTTPRoute, hr, "Gateway/"+ns+"/"+ref.Name)
		st.accepted.fail(ReasonUnsupportedValue, "routes attach to the Services a waypoint serves, not to the waypoint Gateway")
		return
	default:
		return // another controller's parent
	}
	parent := "Service/" + ns + "/" + ref.Name + parentSection(pr)
	if seen[parent] {
		return
	}
	seen[parent] = true
	st := ix.status.of(KindHTTPRoute, hr, parent)
	if ns != hr.Namespace {
		st.accepted.fail(ReasonUnsupportedValue, "a parent Service in another namespace (consumer route) is not supported")
		return
	}
	b := ix.bound[ref]
	if b == nil {
		if ix.services[ref] == nil {
			st.accepted.fail(ReasonNoMatchingParent, "Service %s not found", ref)
		} else {
			st.accepted.fail(ReasonNoMatchingParent, "Service %s is not served by a waypoint (istio.io/use-waypoint)", ref)
		}
		return
	}
	ports, reason, err := parentPorts(b.model, pr)
	if err != nil {
		st.accepted.fail(reason, "%v", err)
		return
	}
	if len(hr.Spec.Hostnames) > 0 {
		st.accepted.note("hostnames are ignored for Service parents")
	}
	for _, p := range ports {
		c := &hrConverter{ix: ix, hr: hr, st: st, fallback: Backend{Hostname: b.model.Hostname, Port: p}}
		for ri := range hr.Spec.Rules {
			b.entries[p] = append(b.entries[p], c.rule(ri, &hr.Spec.Rules[ri])...)
		}
	}
	b.hasHTTPRoute = true
}

// parentSection is ":<port>" or "/<sectionName>" when the parentRef narrows the service.
func parentSection(pr gatewayv1.ParentReference) string {
	switch {
	case pr.Port != nil:
		return ":" + itoa(int(*pr.Port))
	case pr.SectionName != nil:
		return "/" + string(*pr.SectionName)
	}
	return ""
}

// parentPorts are the HTTP ports of svc a parentRef attaches to: its port (or the port
// named by sectionName), else every HTTP port.
func parentPorts(svc *Service, pr gatewayv1.ParentReference) ([]uint32, string, error) {
	var picked []Port
	switch {
	case pr.Port != nil:
		i := slices.IndexFunc(svc.Ports, func(p Port) bool { return int64(p.Number) == int64(*pr.Port) })
		if i < 0 {
			return nil, ReasonNoMatchingParent, fmt.Errorf("service %s/%s has no TCP port %d", svc.Namespace, svc.Name, *pr.Port)
		}
		picked = svc.Ports[i : i+1]
	case pr.SectionName != nil:
		i := slices.IndexFunc(svc.Ports, func(p Port) bool { return p.Name == string(*pr.SectionName) })
		if i < 0 {
			return nil, ReasonNoMatchingParent, fmt.Errorf("service %s/%s has no TCP port named %q", svc.Namespace, svc.Name, *pr.SectionName)
		}
		picked = svc.Ports[i : i+1]
	default:
		picked = svc.Ports
	}
	var out []uint32
	for _, p := range picked {
		if isHTTP(p.Protocol) {
			out = append(out, p.Number)
		}
	}
	if len(out) == 0 {
		return nil, ReasonUnsupportedValue, fmt.Errorf("service %s/%s has no HTTP port here (HTTP routes need appProtocol http/http2/grpc or an http-/grpc- port name)", svc.Namespace, svc.Name)
	}
	return out, "", nil
}

// finishRoutes gives every HTTP port of a bound service its routes: the HTTPRoute
// entries in precedence order when any HTTPRoute attaches to the service, else the
// VirtualService's routes.
func (ix *index) finishRoutes() {
	for _, b := range ix.boundList {
		for i := range b.model.Ports {
			p := &b.model.Ports[i]
			if !isHTTP(p.Protocol) {
				continue
			}
			if !b.hasHTTPRoute {
				p.Routes = b.vsRoutes[p.Number]
				continue
			}
			es := b.entries[p.Number]
			slices.SortStableFunc(es, func(a, b routeEntry) int { return a.prec.compare(b.prec) })
			for _, e := range es {
				p.Routes = append(p.Routes, e.route)
			}
		}
	}
}

// compare orders by Gateway API precedence: exact path, then prefix (longest first),
// then regex (Istio's ranks); a method match; more header matches; more query matches;
// the older route; namespace/name; then rule and match order.
func (p precedence) compare(q precedence) int {
	return cmp.Or(
		cmp.Compare(q.rank, p.rank),
		cmp.Compare(q.pathLen, p.pathLen),
		cmp.Compare(boolInt(q.method), boolInt(p.method)),
		cmp.Compare(q.headers, p.headers),
		cmp.Compare(q.query, p.query),
		p.created.Compare(q.created),
		cmp.Compare(p.namespace, q.namespace),
		cmp.Compare(p.name, q.name),
		cmp.Compare(p.rule, q.rule),
		cmp.Compare(p.match, q.match),
	)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
