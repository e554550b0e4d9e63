package envoy

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// compact is a message's protojson with proto field names, for readable assertions.
func compact(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), "")
}

func TestBuildMatch(t *testing.T) {
	tests := []struct {
		name    string
		in      l7.Match
		want    string // compact protojson
		wantErr bool
	}{
		{"any", l7.Match{}, `{"prefix":"/"}`, false},
		{"exact", l7.Match{Path: l7.PathMatch{Kind: l7.PathExact, Value: "/a"}}, `{"path":"/a"}`, false},
		{"path prefix", l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/a/"}}, `{"path_separated_prefix":"/a"}`, false},
		{"path prefix root", l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/"}}, `{"prefix":"/"}`, false},
		{"raw prefix", l7.Match{Path: l7.PathMatch{Kind: l7.PathRaw, Value: "/ab"}}, `{"prefix":"/ab"}`, false},
		{"regex", l7.Match{Path: l7.PathMatch{Kind: l7.PathRegex, Value: "/v[0-9]+/.*"}}, `{"safe_regex":{"regex":"/v[0-9]+/.*"}}`, false},
		{"bad regex", l7.Match{Path: l7.PathMatch{Kind: l7.PathRegex, Value: "(("}}, "", true},
		{"exact without slash", l7.Match{Path: l7.PathMatch{Kind: l7.PathExact, Value: "a"}}, "", true},
		{"query in path", l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/a?b"}}, "", true},
		{"unknown kind", l7.Match{Path: l7.PathMatch{Kind: "Glob", Value: "/a"}}, "", true},
		{"headers method query", l7.Match{
			Headers: []l7.StringMatch{{Name: "End-User", Value: "jason"}, {Name: "x-v", Regex: true, Value: "v[12]", Invert: true}},
			Query:   []l7.StringMatch{{Name: "debug", Value: "1"}},
			Method:  "POST",
		}, `{"prefix":"/","headers":[{"name":"end-user","string_match":{"exact":"jason"}},` +
			`{"name":"x-v","string_match":{"safe_regex":{"regex":"v[12]"}},"invert_match":true},` +
			`{"name":":method","string_match":{"exact":"POST"}}],` +
			`"query_parameters":[{"name":"debug","string_match":{"exact":"1"}}]}`, false},
		{"header without name", l7.Match{Headers: []l7.StringMatch{{Value: "x"}}}, "", true},
		{"inverted query", l7.Match{Query: []l7.StringMatch{{Name: "a", Value: "1", Invert: true}}}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildMatch(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("buildMatch = %s, want an error", compact(t, got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := compact(t, got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestBuildAction(t *testing.T) {
	b1, b2 := weighted(reviews1, 90), weighted(reviews2, 10)
	tests := []struct {
		name    string
		route   l7.Route
		want    string
		reached int
		wantErr bool
	}{
		{"one backend", l7.Route{Backends: []l7.WeightedBackend{weighted(reviews, 0)}},
			`{"cluster":"outbound|9080||reviews.bookinfo.svc.cluster.local","timeout":"0s"}`, 1, false},
		{"weighted", l7.Route{Backends: []l7.WeightedBackend{b1, b2}},
			`{"weighted_clusters":{"clusters":[{"name":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","weight":90},` +
				`{"name":"outbound|9080||reviews-v2.bookinfo.svc.cluster.local","weight":10}]},"timeout":"0s"}`, 2, false},
		{"zero weight dropped", l7.Route{Backends: []l7.WeightedBackend{b1, weighted(reviews2, 0)}},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"0s"}`, 2, false},
		{"timeout", l7.Route{Backends: []l7.WeightedBackend{b1}, Timeout: 1500 * time.Millisecond},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"1.500s"}`, 1, false},
		{"negative timeout", l7.Route{Backends: []l7.WeightedBackend{b1}, Timeout: -1}, "", 0, true},
		{"retry", l7.Route{Backends: []l7.WeightedBackend{b1}, Retry: &l7.Retry{Attempts: 3, On: []string{"5xx"}, StatusCodes: []uint32{429}}},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"0s",` +
				`"retry_policy":{"retry_on":"5xx,retriable-status-codes","num_retries":3,"retriable_status_codes":[429]}}`, 1, false},
		{"retry default conditions", l7.Route{Backends: []l7.WeightedBackend{b1}, Retry: &l7.Retry{Attempts: 2, PerTryTimeout: time.Second}},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"0s",` +
				`"retry_policy":{"retry_on":"connect-failure,refused-stream,retriable-status-codes","num_retries":2,` +
				`"per_try_timeout":"1s","retriable_status_codes":[503]}}`, 1, false},
		{"retry zero attempts", l7.Route{Backends: []l7.WeightedBackend{b1}, Retry: &l7.Retry{On: []string{"5xx"}}},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"0s"}`, 1, false},
		{"retry unknown condition", l7.Route{Backends: []l7.WeightedBackend{b1}, Retry: &l7.Retry{Attempts: 1, On: []string{"cancelled"}}}, "", 0, true},
		{"mirror", l7.Route{Backends: []l7.WeightedBackend{b1}, Mirrors: []l7.Mirror{
			{Backend: backend(reviews2, 9080, ""), Percent: 100}, {Backend: backend(reviews, 9080, ""), Percent: 12.5}}},
			`{"cluster":"outbound|9080||reviews-v1.bookinfo.svc.cluster.local","timeout":"0s","request_mirror_policies":[` +
				`{"cluster":"outbound|9080||reviews-v2.bookinfo.svc.cluster.local","runtime_fraction":{"default_value":{"numerator":100}}},` +
				`{"cluster":"outbound|9080||reviews.bookinfo.svc.cluster.local","runtime_fraction":{"default_value":{"numerator":125000,"denominator":"MILLION"}}}]}`, 3, false},
		{"mirror over 100", l7.Route{Backends: []l7.WeightedBackend{b1}, Mirrors: []l7.Mirror{{Backend: backend(reviews2, 9080, ""), Percent: 101}}}, "", 0, true},
		{"weights overflow", l7.Route{Backends: []l7.WeightedBackend{weighted(reviews1, 1<<31), weighted(reviews2, 1<<31)}}, "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reached, err := buildAction(&tc.route)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("buildAction = %s, want an error", compact(t, got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := compact(t, got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
			if len(reached) != tc.reached {
				t.Errorf("reached %d backends, want %d", len(reached), tc.reached)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	pp := func(v string) l7.PathMatch { return l7.PathMatch{Kind: l7.PathPrefix, Value: v} }
	tests := []struct {
		name    string
		rw      l7.Rewrite
		match   l7.PathMatch
		want    string
		wantErr bool
	}{
		{"host", l7.Rewrite{Host: "example"}, pp("/"), `{"host_rewrite_literal":"example"}`, false},
		{"full path", l7.Rewrite{Path: "/x"}, pp("/a"), `{"regex_rewrite":{"pattern":{"regex":"^/.*$"},"substitution":"/x"}}`, false},
		{"prefix", l7.Rewrite{PrefixRewrite: "/v1/", PrefixSet: true}, pp("/api"), `{"prefix_rewrite":"/v1"}`, false},
		{"prefix of root", l7.Rewrite{PrefixRewrite: "/v1", PrefixSet: true}, pp("/"), `{"prefix_rewrite":"/v1/"}`, false},
		{"prefix to root", l7.Rewrite{PrefixSet: true}, pp("/api/"),
			`{"regex_rewrite":{"pattern":{"regex":"^/api/*"},"substitution":"/"}}`, false},
		{"raw prefix", l7.Rewrite{PrefixRewrite: "/b"}, l7.PathMatch{Kind: l7.PathRaw, Value: "/a"}, `{"prefix_rewrite":"/b"}`, false},
		{"exact", l7.Rewrite{PrefixRewrite: "/b"}, l7.PathMatch{Kind: l7.PathExact, Value: "/a"},
			`{"regex_rewrite":{"pattern":{"regex":"^/.*$"},"substitution":"/b"}}`, false},
		{"regex match", l7.Rewrite{PrefixRewrite: "/b"}, l7.PathMatch{Kind: l7.PathRegex, Value: "/a.*"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &routev3.RouteAction{}
			err := addRewrite(a, &tc.rw, tc.match)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("addRewrite = %s, want an error", compact(t, a))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := compact(t, a); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name    string
		rd      l7.Redirect
		match   l7.PathMatch
		want    string
		wantErr bool
	}{
		{"default code", l7.Redirect{Host: "h"}, l7.PathMatch{}, `{"host_redirect":"h","response_code":"FOUND"}`, false},
		{"all fields", l7.Redirect{Scheme: "https", Host: "h", Port: 8443, Path: "/p", StatusCode: 301}, l7.PathMatch{},
			`{"scheme_redirect":"https","host_redirect":"h","port_redirect":8443,"path_redirect":"/p"}`, false},
		{"prefix", l7.Redirect{PrefixRewrite: "/new/", StatusCode: 308}, l7.PathMatch{Kind: l7.PathPrefix, Value: "/old"},
			`{"prefix_rewrite":"/new","response_code":"PERMANENT_REDIRECT"}`, false},
		{"303 and 307", l7.Redirect{StatusCode: 303}, l7.PathMatch{}, `{"response_code":"SEE_OTHER"}`, false},
		{"bad code", l7.Redirect{StatusCode: 300}, l7.PathMatch{}, "", true},
		{"path and prefix", l7.Redirect{Path: "/a", PrefixRewrite: "/b"}, l7.PathMatch{}, "", true},
		{"prefix with exact", l7.Redirect{PrefixRewrite: "/b"}, l7.PathMatch{Kind: l7.PathExact, Value: "/a"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildRedirect(&tc.rd, tc.match)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("buildRedirect = %s, want an error", compact(t, got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := compact(t, got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestHeaderMutations(t *testing.T) {
	tests := []struct {
		name    string
		route   l7.Route
		check   func(t *testing.T, r *routev3.Route)
		wantErr bool
	}{
		{"set add remove", l7.Route{
			RequestHeaders:  l7.HeaderMutation{Set: []l7.Header{{Name: "X-A", Value: "1"}}, Add: []l7.Header{{Name: "x-b", Value: "2"}}, Remove: []string{"X-C"}},
			ResponseHeaders: l7.HeaderMutation{Set: []l7.Header{{Name: "x-d", Value: "3"}}, Remove: []string{"x-e"}},
		}, func(t *testing.T, r *routev3.Route) {
			req := r.GetRequestHeadersToAdd()
			if len(req) != 2 || req[0].GetHeader().GetKey() != "x-a" || req[0].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD ||
				req[1].GetHeader().GetKey() != "x-b" || req[1].GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				t.Errorf("request headers: %v", req)
			}
			if got := r.GetRequestHeadersToRemove(); len(got) != 1 || got[0] != "x-c" {
				t.Errorf("request removals: %v", got)
			}
			if got := r.GetResponseHeadersToAdd(); len(got) != 1 || got[0].GetHeader().GetValue() != "3" {
				t.Errorf("response headers: %v", got)
			}
			if got := r.GetResponseHeadersToRemove(); len(got) != 1 || got[0] != "x-e" {
				t.Errorf("response removals: %v", got)
			}
		}, false},
		{"host set becomes host rewrite", l7.Route{RequestHeaders: l7.HeaderMutation{Set: []l7.Header{{Name: "Host", Value: "h"}}}},
			func(t *testing.T, r *routev3.Route) {
				if got := r.GetRoute().GetHostRewriteLiteral(); got != "h" || len(r.GetRequestHeadersToAdd()) != 0 {
					t.Errorf("host rewrite %q, headers %v", got, r.GetRequestHeadersToAdd())
				}
			}, false},
		{"pseudo header", l7.Route{RequestHeaders: l7.HeaderMutation{Set: []l7.Header{{Name: ":path", Value: "/"}}}}, nil, true},
		{"remove host", l7.Route{RequestHeaders: l7.HeaderMutation{Remove: []string{"host"}}}, nil, true},
		{"empty name", l7.Route{ResponseHeaders: l7.HeaderMutation{Add: []l7.Header{{Value: "v"}}}}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{}}}
			err := addHeaderMutations(r, &tc.route)
			if tc.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestFault(t *testing.T) {
	tests := []struct {
		name    string
		f       *l7.Fault
		want    *faultv3.HTTPFault // nil: no config
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"zero", &l7.Fault{}, nil, false},
		{"abort 50", &l7.Fault{AbortPercent: 50, AbortStatus: 500}, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
			Percentage: &typev3.FractionalPercent{Numerator: 500000, Denominator: typev3.FractionalPercent_MILLION},
		}}, false},
		{"delay", &l7.Fault{DelayPercent: 0.5, Delay: 2 * time.Second}, nil, false},
		{"abort status out of range", &l7.Fault{AbortPercent: 10, AbortStatus: 99}, nil, true},
		{"percent out of range", &l7.Fault{AbortPercent: 150, AbortStatus: 503}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &routev3.Route{}
			err := addFault(r, tc.f)
			if tc.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			cfg, ok := r.GetTypedPerFilterConfig()[waypointxds.FilterFault]
			switch {
			case tc.name == "delay":
				got := &faultv3.HTTPFault{}
				if !ok || cfg.UnmarshalTo(got) != nil || got.GetDelay().GetFixedDelay().AsDuration() != 2*time.Second ||
					got.GetDelay().GetPercentage().GetNumerator() != 5000 {
					t.Errorf("delay config: %v", got)
				}
			case tc.want == nil:
				if ok {
					t.Errorf("unexpected fault config %v", cfg)
				}
			default:
				got := &faultv3.HTTPFault{}
				if !ok || cfg.UnmarshalTo(got) != nil || !proto.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestRouteNeedsBackendsOrRedirect(t *testing.T) {
	for _, r := range []l7.Route{
		{Name: "none"},
		{Name: "both", Backends: []l7.WeightedBackend{weighted(reviews, 1)}, Redirect: &l7.Redirect{}},
		{Name: "redirect with rewrite", Redirect: &l7.Redirect{}, Rewrite: &l7.Rewrite{Host: "h"}},
	} {
		t.Run(r.Name, func(t *testing.T) {
			_, err := GenerateConfig(waypoint([]l7.Route{r}, httpCluster(reviews)))
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
		})
	}
}
