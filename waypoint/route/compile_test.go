package route

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCompileRejects(t *testing.T) {
	hashed := toCluster("x", "c", prefix("/"))
	hashed.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{}}
	badFault, _ := anypb.New(&faultv3.HTTPFault{UpstreamCluster: "u"})
	withFault := toCluster("f", "c", prefix("/"))
	withFault.TypedPerFilterConfig = map[string]*anypb.Any{FaultFilterName: badFault}
	otherFilter := toCluster("o", "c", prefix("/"))
	otherFilter.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": badFault}
	wrongType, _ := anypb.New(&routev3.Route{})
	wrongFault := toCluster("w", "c", prefix("/"))
	wrongFault.TypedPerFilterConfig = map[string]*anypb.Any{FaultFilterName: wrongType}
	decorated := toCluster("d", "c", prefix("/"))
	decorated.Decorator = &routev3.Decorator{Operation: "op"}
	direct := &routev3.Route{Name: "dr", Match: prefix("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}}
	rangeHdr := prefix("/")
	rangeHdr.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "a"}}}
	grpc := prefix("/")
	grpc.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{}
	removeHost := toCluster("rh", "c", prefix("/"))
	removeHost.RequestHeadersToRemove = []string{"host"}
	operator := toCluster("op", "c", prefix("/"))
	operator.RequestHeadersToAdd = []*corev3.HeaderValueOption{hvo("x", "%DOWNSTREAM_REMOTE_ADDRESS%", 0)}
	appendBool := toCluster("ab", "c", prefix("/"))
	appendBool.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "y"}, Append: wrapperspb.Bool(true)}}

	tests := []struct {
		name        string
		rc          *routev3.RouteConfiguration
		want        string
		unsupported bool
	}{
		{name: "hash policy", rc: config(hashed), want: `route "x": unsupported field route.hash_policy`, unsupported: true},
		{name: "decorator", rc: config(decorated), want: `route "d": unsupported field decorator`, unsupported: true},
		{name: "direct response", rc: config(direct), want: "unsupported field direct_response", unsupported: true},
		{name: "prefix header match", rc: config(toCluster("p", "c", rangeHdr)), want: "match.headers[0].prefix_match", unsupported: true},
		{name: "grpc match", rc: config(toCluster("g", "c", grpc)), want: "match.grpc", unsupported: true},
		{name: "fault with unsupported field", rc: config(withFault), want: "upstream_cluster", unsupported: true},
		{name: "other filter config", rc: config(otherFilter), want: `typed_per_filter_config["envoy.filters.http.cors"]`, unsupported: true},
		{name: "fault of wrong type", rc: config(wrongFault), want: "envoy.config.route.v3.Route", unsupported: true},
		{name: "deprecated append", rc: config(appendBool), want: "request_headers_to_add[0].append", unsupported: true},
		{name: "unknown retry_on", rc: config(withAction("r", prefix("/"), &routev3.RouteAction{
			RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,envoy-ratelimited"}})), want: `retry_on value "envoy-ratelimited"`, unsupported: true},
		{name: "header operator", rc: config(operator), want: "command operator", unsupported: true},
		{name: "virtual host cors", rc: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"}, Cors: &routev3.CorsPolicy{}}}}, want: "unsupported field cors", unsupported: true},
		{name: "route config header", rc: &routev3.RouteConfiguration{Name: "r", InternalOnlyHeaders: []string{"x"}},
			want: `route configuration "r": unsupported field internal_only_headers`, unsupported: true},
		{name: "remove host", rc: config(removeHost), want: "may not be modified"},
		{name: "no match", rc: config(&routev3.Route{Name: "n", Action: toCluster("", "c", nil).Action}), want: "match is required"},
		{name: "no path specifier", rc: config(toCluster("n", "c", &routev3.RouteMatch{})), want: "one of prefix"},
		{name: "no action", rc: config(&routev3.Route{Name: "n", Match: prefix("/")}), want: "one of route, redirect"},
		{name: "empty cluster", rc: config(toCluster("e", "", prefix("/"))), want: "cluster is empty"},
		{name: "zero weights", rc: config(withAction("z", prefix("/"), &routev3.RouteAction{
			ClusterSpecifier: weighted(map[string]uint32{"a": 0}, "a")})), want: "total weight"},
		{name: "bad regex", rc: config(toCluster("b", "c", regexPath("("))), want: "safe_regex"},
		{name: "bad separated prefix", rc: config(toCluster("s", "c", sepPrefix("/a/"))), want: "path_separated_prefix"},
		{name: "negative timeout", rc: config(withAction("t", prefix("/"), &routev3.RouteAction{Timeout: &durationpb.Duration{Seconds: -1}})),
			want: "route.timeout"},
		{name: "bad substitution", rc: config(withAction("s", prefix("/"), &routev3.RouteAction{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
			Pattern: &matcherv3.RegexMatcher{Regex: "(a)"}, Substitution: "\\2"}})), want: "substitution"},
		{name: "no domains", rc: &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v"}}}, want: "domains"},
		{name: "nil", rc: nil, want: "nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := Compile(tc.rc)
			if err == nil {
				t.Fatalf("Compile = %+v, want error", tb)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v (%v)", !tc.unsupported, tc.unsupported, err)
			}
		})
	}
}

func TestCompileRejectsUnknownWireFields(t *testing.T) {
	rc := config(toCluster("u", "c", prefix("/")))
	raw, err := proto.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	// Field 999 (varint 1) is not in RouteConfiguration: a newer Envoy API field.
	raw = append(raw, 0xb8, 0x3e, 0x01)
	var got routev3.RouteConfiguration
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(&got); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Compile with an unknown field: %v, want ErrUnsupported", err)
	}
}

func FuzzCompile(f *testing.F) {
	seed := config(
		toCluster("a", "c", sepPrefix("/api")),
		withAction("b", regexPath("/b/.*"), &routev3.RouteAction{PrefixRewrite: "/x",
			RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx"}}),
		&routev3.Route{Name: "r", Match: prefix("/r"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/n"}}}},
	)
	raw, _ := proto.Marshal(seed)
	f.Add(raw, "/api/x?q=1")
	f.Add([]byte{}, "/")
	f.Fuzz(func(t *testing.T, data []byte, target string) {
		var rc routev3.RouteConfiguration
		if proto.Unmarshal(data, &rc) != nil {
			return
		}
		tb, err := Compile(&rc)
		if err != nil {
			return
		}
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			target = "/"
		}
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic on %q: %v", target, p)
			}
		}()
		r := httptest.NewRequest("GET", "/", nil)
		setRequestPath(r, target)
		rt := tb.Match(r)
		if rt == nil {
			return
		}
		rt.Pick(uint64(len(data)))
		if rt.Redirect != nil {
			rt.Redirect.Response(r)
			return
		}
		rt.PrepareRequest(r)
		rt.PrepareResponse(r.Header)
	})
}
