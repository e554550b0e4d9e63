package envoy

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// DefaultRouteName names the route of a service port that has no l7.Route.
const DefaultRouteName = "default"

// routeConfig is the RDS resource of one HTTP service port: one virtual host
// "<FQDN>:<port>" for every domain, with the port's routes in order (or the default
// route to the port's own cluster). It also returns every backend the routes reach.
func routeConfig(name, hostname string, port *l7.Port) (*routev3.RouteConfiguration, []l7.Backend, error) {
	vh := &routev3.VirtualHost{
		Name:    hostname + ":" + strconv.FormatUint(uint64(port.Number), 10),
		Domains: []string{"*"},
	}
	var backends []l7.Backend
	if len(port.Routes) == 0 {
		def := l7.Backend{Hostname: hostname, Port: port.Number}
		vh.Routes = []*routev3.Route{{
			Name:  DefaultRouteName,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: def.Name()},
				Timeout:          duration(0),
			}},
		}}
		backends = append(backends, def)
	}
	for i := range port.Routes {
		r, reached, err := buildRoute(&port.Routes[i])
		if err != nil {
			return nil, nil, inputErr("route configuration %q: route %d %q: %w", name, i, port.Routes[i].Name, err)
		}
		vh.Routes = append(vh.Routes, r)
		backends = append(backends, reached...)
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}}, backends, nil
}

// buildRoute maps one l7.Route; it returns the backends (forward and mirror) it reaches.
func buildRoute(r *l7.Route) (*routev3.Route, []l7.Backend, error) {
	match, err := buildMatch(r.Match)
	if err != nil {
		return nil, nil, err
	}
	out := &routev3.Route{Name: r.Name, Match: match}
	var backends []l7.Backend
	switch {
	case r.Redirect != nil && len(r.Backends) > 0:
		return nil, nil, errorf("both backends and a redirect")
	case r.Redirect != nil:
		if r.Rewrite != nil || len(r.Mirrors) > 0 || r.Retry != nil {
			return nil, nil, errorf("a redirect with a rewrite, mirror or retry")
		}
		rd, err := buildRedirect(r.Redirect, r.Match.Path)
		if err != nil {
			return nil, nil, err
		}
		out.Action = &routev3.Route_Redirect{Redirect: rd}
	case len(r.Backends) > 0:
		a, reached, err := buildAction(r)
		if err != nil {
			return nil, nil, err
		}
		out.Action = &routev3.Route_Route{Route: a}
		backends = reached
	default:
		return nil, nil, errorf("neither backends nor a redirect")
	}
	if err := addHeaderMutations(out, r); err != nil {
		return nil, nil, err
	}
	if err := addFault(out, r.Fault); err != nil {
		return nil, nil, err
	}
	return out, backends, nil
}

// buildMatch maps a path kind to Envoy's: Exact -> path, PathPrefix -> path_separated_prefix
// (prefix "/" for "/"), Prefix -> prefix, RegularExpression -> safe_regex, any -> prefix "/".
// Header and query conditions are exact or safe_regex string matches; the method is an
// exact ":method" header match. Regexes must compile as RE2 (Go's regexp, the engine's).
func buildMatch(m l7.Match) (*routev3.RouteMatch, error) {
	rm := &routev3.RouteMatch{}
	v := m.Path.Value
	if strings.ContainsAny(v, "?#") && m.Path.Kind != l7.PathRegex {
		return nil, errorf("path %q holds '?' or '#'", v)
	}
	switch m.Path.Kind {
	case l7.PathAny:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case l7.PathExact:
		if !strings.HasPrefix(v, "/") {
			return nil, errorf("exact path %q does not start with '/'", v)
		}
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: v}
	case l7.PathPrefix:
		if !strings.HasPrefix(v, "/") {
			return nil, errorf("path prefix %q does not start with '/'", v)
		}
		if p := strings.TrimRight(v, "/"); p != "" {
			rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}
		} else {
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		}
	case l7.PathRaw:
		if v == "" {
			v = "/"
		}
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: v}
	case l7.PathRegex:
		if err := checkRegex(v); err != nil {
			return nil, err
		}
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}
	default:
		return nil, errorf("unknown path match kind %q", m.Path.Kind)
	}
	for _, h := range m.Headers {
		if !validHeaderName(h.Name) || checkValue(h.Value) != nil {
			return nil, errorf("invalid header match %q: %q", h.Name, h.Value)
		}
		sm, err := stringMatch(h)
		if err != nil {
			return nil, err
		}
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 strings.ToLower(h.Name),
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
			InvertMatch:          h.Invert,
		})
	}
	if m.Method != "" {
		if checkValue(m.Method) != nil {
			return nil, errorf("invalid method %q", m.Method)
		}
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m.Method)},
		})
	}
	for _, q := range m.Query {
		if q.Invert {
			return nil, errorf("inverted query parameter match %q", q.Name)
		}
		sm, err := stringMatch(q)
		if err != nil {
			return nil, err
		}
		rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm},
		})
	}
	return rm, nil
}

func stringMatch(s l7.StringMatch) (*matcherv3.StringMatcher, error) {
	if s.Name == "" {
		return nil, errorf("header or query match without a name")
	}
	if s.Regex {
		if err := checkRegex(s.Value); err != nil {
			return nil, err
		}
		return regex(s.Value), nil
	}
	return exact(s.Value), nil
}

func checkRegex(re string) error {
	if re == "" {
		return errorf("empty regex")
	}
	if _, err := regexp.Compile(re); err != nil {
		return errorf("regex %q: %w", re, err)
	}
	return nil
}

func checkTimeout(what string, d time.Duration) error {
	if d < 0 {
		return errorf("negative %s %v", what, d)
	}
	return nil
}
