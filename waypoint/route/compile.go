package route

import (
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/waypoint/fault"
	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// allowed is the implemented subset of the RDS API (issue 5, section 2).
// VirtualHost and Route are opaque to the walk of their parents: each is
// checked on its own so errors name the route.
var allowed = &protoshape.AllowList{
	Fields: protoshape.Fields{
		"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts"},
		"envoy.config.route.v3.VirtualHost":        {"name", "domains", "routes"},
		"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "typed_per_filter_config",
			"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"},
		"envoy.config.route.v3.RouteMatch": {"prefix", "path", "safe_regex", "path_separated_prefix",
			"case_sensitive", "headers", "query_parameters"},
		"envoy.config.route.v3.HeaderMatcher":         {"name", "string_match", "present_match", "invert_match"},
		"envoy.config.route.v3.QueryParameterMatcher": {"name", "string_match", "present_match"},
		"envoy.config.route.v3.RouteAction": {"cluster", "weighted_clusters", "timeout", "retry_policy",
			"request_mirror_policies", "prefix_rewrite", "regex_rewrite", "host_rewrite_literal"},
		"envoy.config.route.v3.WeightedCluster":                 {"clusters"},
		"envoy.config.route.v3.WeightedCluster.ClusterWeight":   {"name", "weight"},
		"envoy.config.route.v3.RetryPolicy":                     {"retry_on", "num_retries", "per_try_timeout", "retriable_status_codes"},
		"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": {"cluster", "runtime_fraction"},
		"envoy.config.route.v3.RedirectAction": {"scheme_redirect", "https_redirect", "host_redirect", "port_redirect",
			"path_redirect", "prefix_rewrite", "response_code", "strip_query"},
		"envoy.config.core.v3.RuntimeFractionalPercent": {"default_value"},
		"envoy.config.core.v3.HeaderValueOption":        {"header", "append_action"},
		"envoy.config.core.v3.HeaderValue":              {"key", "value"},
		"envoy.type.v3.FractionalPercent":               {"numerator", "denominator"},
		"envoy.type.matcher.v3.StringMatcher":           {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"},
		"envoy.type.matcher.v3.RegexMatcher":            {"regex"},
		"envoy.type.matcher.v3.RegexMatchAndSubstitute": {"pattern", "substitution"},
		"google.protobuf.Duration":                      {"seconds", "nanos"},
		"google.protobuf.UInt32Value":                   {"value"},
		"google.protobuf.BoolValue":                     {"value"},
	},
	Opaque: map[protoreflect.FullName]bool{"google.protobuf.Any": true},
}

// shallow additionally treats virtual hosts and routes as opaque.
var shallow = &protoshape.AllowList{Fields: allowed.Fields, Opaque: map[protoreflect.FullName]bool{
	"google.protobuf.Any":               true,
	"envoy.config.route.v3.VirtualHost": true,
	"envoy.config.route.v3.Route":       true,
}}

func compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if rc == nil {
		return nil, fmt.Errorf("route configuration is nil")
	}
	if err := shallow.Check(rc, ""); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t := &Table{Name: rc.GetName()}
	for i, vh := range rc.GetVirtualHosts() {
		v, err := compileVirtualHost(vh)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual host %d %q: %w", rc.GetName(), i, vh.GetName(), err)
		}
		t.hosts = append(t.hosts, v)
	}
	return t, nil
}

func compileVirtualHost(vh *routev3.VirtualHost) (*virtualHost, error) {
	if err := shallow.Check(vh, ""); err != nil {
		return nil, err
	}
	if len(vh.GetDomains()) == 0 {
		return nil, fmt.Errorf("domains: at least one is required")
	}
	v := &virtualHost{}
	for _, d := range vh.GetDomains() {
		if err := v.addDomain(d); err != nil {
			return nil, err
		}
	}
	for i, r := range vh.GetRoutes() {
		rt, err := compileRoute(r)
		if err != nil {
			name := r.GetName()
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, fmt.Errorf("route %q: %w", name, err)
		}
		v.routes = append(v.routes, rt)
	}
	return v, nil
}

func compileRoute(r *routev3.Route) (*Route, error) {
	if r == nil {
		return nil, fmt.Errorf("route is nil")
	}
	if err := allowed.Check(r, ""); err != nil {
		return nil, err
	}
	rt := &Route{Name: r.GetName()}
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	rt.match = m
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		err = rt.compileAction(a.Route)
	case *routev3.Route_Redirect:
		rt.Redirect, err = compileRedirect(a.Redirect, &rt.match)
	default:
		err = fmt.Errorf("one of route, redirect is required")
	}
	if err != nil {
		return nil, err
	}
	if rt.reqHdrs, err = compileHeaderOps(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if rt.respHdrs, err = compileHeaderOps(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}
	if rt.Fault, err = compileFilterConfigs(r.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	return rt, nil
}

// compileFilterConfigs accepts only the fault filter's per-route HTTPFault.
func compileFilterConfigs(cfgs map[string]*anypb.Any) (*fault.Policy, error) {
	var policy *fault.Policy
	for name, a := range cfgs {
		if name != FaultFilterName {
			return nil, fmt.Errorf("%w typed_per_filter_config[%q]", ErrUnsupported, name)
		}
		var hf faultv3.HTTPFault
		if want := "type.googleapis.com/" + string(proto.MessageName(&hf)); a.GetTypeUrl() != want {
			return nil, fmt.Errorf("%w typed_per_filter_config[%q] of type %q", ErrUnsupported, name, a.GetTypeUrl())
		}
		if err := a.UnmarshalTo(&hf); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err)
		}
		p, err := fault.Compile(&hf)
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err)
		}
		policy = p
	}
	return policy, nil
}

// virtualHost holds the domains of one virtual host, by kind.
type virtualHost struct {
	exact    []string // lower-case
	suffixes []string // "*.example.com" stored as ".example.com"
	prefixes []string // "foo.*" stored as "foo."
	any      bool
	routes   []*Route
}

func (vh *virtualHost) addDomain(d string) error {
	d = lowerASCII(d)
	switch {
	case d == "*":
		vh.any = true
	case strings.Count(d, "*") > 1 || d == "":
		return fmt.Errorf("domain %q: invalid", d)
	case strings.HasPrefix(d, "*"):
		vh.suffixes = append(vh.suffixes, d[1:])
	case strings.HasSuffix(d, "*"):
		vh.prefixes = append(vh.prefixes, d[:len(d)-1])
	case strings.Contains(d, "*"):
		return fmt.Errorf("domain %q: wildcard must be first or last", d)
	default:
		vh.exact = append(vh.exact, d)
	}
	return nil
}
