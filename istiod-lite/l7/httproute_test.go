package l7

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const reviewsHost = "reviews.shop.svc.cluster.local"

func reviews(port uint32, subset string) Backend {
	return Backend{Hostname: reviewsHost, Port: port, Subset: subset}
}

// hr wraps rules in an HTTPRoute shop/r attached to Service reviews.
func hr(rules string) string {
	return `{metadata: {name: r, namespace: shop, generation: 3}, spec: {parentRefs: [{group: "", kind: Service, name: reviews}], rules: ` + rules + `}}`
}

func TestHTTPRouteRules(t *testing.T) {
	abort500 := &Fault{AbortPercent: 100, AbortStatus: 500}
	tests := []struct {
		name   string
		route  string
		want   []Route
		status []string // Accepted reason, ResolvedRefs reason, message fragments...
	}{
		{
			name:  "weighted backends",
			route: hr(`[{backendRefs: [{name: reviews, port: 9080, weight: 90}, {name: ratings, port: 8080, weight: 10}]}]`),
			want: []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{
				{reviews(9080, ""), 90}, {Backend{Hostname: "ratings.shop.svc.cluster.local", Port: 8080}, 10}}}},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name: "matches",
			route: hr(`[{matches: [{path: {type: Exact, value: /a}, headers: [{name: X-V, value: "2"}, {name: x-v, value: "3"},
				{type: RegularExpression, name: x-r, value: "a.*"}], queryParams: [{name: q, value: v}], method: GET},
				{path: {value: /p/}}, {path: {type: RegularExpression, value: "/r/[0-9]+"}}], backendRefs: [{name: reviews, port: 9080}]}]`),
			want: []Route{
				{Name: "HTTPRoute/shop/r/0/0", Match: Match{Path: PathMatch{PathExact, "/a"}, Method: "GET",
					Headers: []StringMatch{{Name: "x-v", Value: "2"}, {Name: "x-r", Regex: true, Value: "a.*"}},
					Query:   []StringMatch{{Name: "q", Value: "v"}}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}},
				{Name: "HTTPRoute/shop/r/0/1", Match: Match{Path: PathMatch{PathPrefix, "/p"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}},
				{Name: "HTTPRoute/shop/r/0/2", Match: Match{Path: PathMatch{PathRegex, "/r/[0-9]+"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}},
			},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name: "filters",
			route: hr(`[{filters: [
				{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: "1"}], add: [{name: x-b, value: "2"}], remove: [X-C]}},
				{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-d, value: "4"}]}},
				{type: URLRewrite, urlRewrite: {hostname: new.example, path: {type: ReplaceFullPath, replaceFullPath: /new}}},
				{type: RequestMirror, requestMirror: {backendRef: {name: ratings, port: 8080}, percent: 25}},
				{type: RequestMirror, requestMirror: {backendRef: {name: reviews, port: 9080}, fraction: {numerator: 1, denominator: 4}}}],
				backendRefs: [{name: reviews, port: 9080}], timeouts: {request: 1s}}]`),
			want: []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}},
				RequestHeaders:  HeaderMutation{Set: []Header{{"x-a", "1"}}, Add: []Header{{"x-b", "2"}}, Remove: []string{"x-c"}},
				ResponseHeaders: HeaderMutation{Set: []Header{{"x-d", "4"}}},
				Rewrite:         &Rewrite{Host: "new.example", Path: "/new"},
				Mirrors: []Mirror{{Backend{Hostname: "ratings.shop.svc.cluster.local", Port: 8080}, 25},
					{reviews(9080, ""), 25}},
				Timeout: time.Second}},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name: "prefix rewrite and redirect",
			route: hr(`[{matches: [{path: {value: /old}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}],
				backendRefs: [{name: reviews, port: 9080}]},
				{matches: [{path: {type: Exact, value: /go}}], filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: x.example, port: 8443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /there}}}]}]`),
			want: []Route{
				{Name: "HTTPRoute/shop/r/1/0", Match: Match{Path: PathMatch{PathExact, "/go"}},
					Redirect: &Redirect{Scheme: "https", Host: "x.example", Port: 8443, Path: "/there", StatusCode: 301}},
				{Name: "HTTPRoute/shop/r/0/0", Match: Match{Path: PathMatch{PathPrefix, "/old"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}},
					Rewrite: &Rewrite{PrefixRewrite: "/new", PrefixSet: true}},
			},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name:  "retry and backend timeout",
			route: hr(`[{backendRefs: [{name: reviews, port: 9080}], retry: {attempts: 3, codes: [503], backoff: 10ms}, timeouts: {request: 5s, backendRequest: 1s}}]`),
			want: []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Timeout: 5 * time.Second,
				Retry: &Retry{Attempts: 3, PerTryTimeout: time.Second, On: defaultRetryOn, StatusCodes: []uint32{503}}}},
			status: []string{ReasonAccepted, ReasonResolvedRefs, "backoff is ignored"},
		},
		{
			name:   "backend timeout without retries",
			route:  hr(`[{backendRefs: [{name: reviews, port: 9080}], timeouts: {backendRequest: 2s}}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Timeout: 2 * time.Second}},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name:   "no backends answers 500",
			route:  hr(`[{matches: [{path: {value: /x}}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Match: Match{Path: PathMatch{PathPrefix, "/x"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonAccepted, ReasonResolvedRefs},
		},
		{
			name:  "missing backend gets its share of 500s",
			route: hr(`[{backendRefs: [{name: reviews, port: 9080, weight: 3}, {name: gone, port: 80, weight: 1}]}]`),
			want: []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 3}},
				Fault: &Fault{AbortPercent: 25, AbortStatus: 500}}},
			status: []string{ReasonAccepted, ReasonBackendNotFound, "Service shop/gone not found"},
		},
		{
			name:   "backend port missing",
			route:  hr(`[{backendRefs: [{name: reviews, port: 1234}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonAccepted, ReasonBackendNotFound, "no TCP port 1234"},
		},
		{
			name:   "cross-namespace backend",
			route:  hr(`[{backendRefs: [{name: outside, namespace: other, port: 80}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonAccepted, ReasonRefNotPermitted, "ReferenceGrant"},
		},
		{
			name:   "backend of another kind",
			route:  hr(`[{backendRefs: [{group: networking.istio.io, kind: ServiceEntry, name: x, port: 80}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonAccepted, ReasonInvalidKind},
		},
		{
			name: "unsupported filter keeps its matches and answers 500",
			route: hr(`[{matches: [{path: {value: /auth}}], filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}], backendRefs: [{name: reviews, port: 9080}]},
				{backendRefs: [{name: reviews, port: 9080}]}]`),
			want: []Route{
				{Name: "HTTPRoute/shop/r/0/0", Match: Match{Path: PathMatch{PathPrefix, "/auth"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500},
				{Name: "HTTPRoute/shop/r/1/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}},
			},
			status: []string{ReasonUnsupportedValue, ReasonResolvedRefs, `rules[0]: filters[0]: filter type "ExtensionRef" is not supported`},
		},
		{
			name:   "session persistence",
			route:  hr(`[{sessionPersistence: {sessionName: s}, backendRefs: [{name: reviews, port: 9080}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonUnsupportedValue, ReasonResolvedRefs, "sessionPersistence"},
		},
		{
			name:   "prefix rewrite on an exact match",
			route:  hr(`[{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}], backendRefs: [{name: reviews, port: 9080}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/0", Match: Match{Path: PathMatch{PathExact, "/a"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}, Fault: abort500}},
			status: []string{ReasonUnsupportedValue, ReasonResolvedRefs, "ReplacePrefixMatch"},
		},
		{
			name:   "invalid regex match is dropped",
			route:  hr(`[{matches: [{path: {type: RegularExpression, value: "(("}}, {path: {value: /ok}}], backendRefs: [{name: reviews, port: 9080}]}]`),
			want:   []Route{{Name: "HTTPRoute/shop/r/0/1", Match: Match{Path: PathMatch{PathPrefix, "/ok"}}, Backends: []WeightedBackend{{reviews(9080, ""), 1}}}},
			status: []string{ReasonUnsupportedValue, ReasonResolvedRefs, "matches[0]", "match dropped"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.HTTPRoutes = []*gatewayv1.HTTPRoute{route(t, tc.route)}
			res := Build(in)
			checkWellFormed(t, res)
			got := portRoutes(t, res, "reviews", 9080)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes =\n%+v\nwant\n%+v", got, tc.want)
			}
			if tcp := portRoutes(t, res, "reviews", 5432); len(tcp) != 0 {
				t.Errorf("TCP port got routes %+v", tcp)
			}
			st := statusOf(t, res, KindHTTPRoute, "r", "Service/shop/reviews")
			if st.Generation != 3 {
				t.Errorf("generation = %d", st.Generation)
			}
			acc := condition(t, st, ConditionAccepted)
			wantStatus := func(reason string) metav1.ConditionStatus {
				if reason == ReasonAccepted || reason == ReasonResolvedRefs {
					return metav1.ConditionTrue
				}
				return metav1.ConditionFalse
			}
			wantCondition(t, st, ConditionAccepted, wantStatus(tc.status[0]), tc.status[0])
			wantCondition(t, st, ConditionResolvedRefs, wantStatus(tc.status[1]), tc.status[1])
			for _, f := range tc.status[2:] {
				refs := condition(t, st, ConditionResolvedRefs)
				if !strings.Contains(acc.Message, f) && !strings.Contains(refs.Message, f) {
					t.Errorf("no condition message holds %q: %q / %q", f, acc.Message, refs.Message)
				}
			}
		})
	}
}

func TestHTTPRouteParents(t *testing.T) {
	tests := []struct {
		name, parents, parent, reason, fragment string
	}{
		{"service not bound", `[{group: "", kind: Service, name: outside, namespace: other}]`, "Service/other/outside", ReasonUnsupportedValue, "consumer route"},
		{"service missing", `[{group: "", kind: Service, name: nope}]`, "Service/shop/nope", ReasonNoMatchingParent, "not found"},
		{"port given", `[{group: "", kind: Service, name: reviews, port: 9080}]`, "Service/shop/reviews:9080", ReasonAccepted, ""},
		{"tcp port", `[{group: "", kind: Service, name: reviews, port: 5432}]`, "Service/shop/reviews:5432", ReasonUnsupportedValue, "no HTTP port"},
		{"missing port", `[{group: "", kind: Service, name: reviews, port: 1}]`, "Service/shop/reviews:1", ReasonNoMatchingParent, "no TCP port 1"},
		{"section name", `[{group: "", kind: Service, name: reviews, sectionName: http}]`, "Service/shop/reviews/http", ReasonAccepted, ""},
		{"waypoint gateway", `[{name: wp}]`, "Gateway/shop/wp", ReasonUnsupportedValue, "not to the waypoint Gateway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.HTTPRoutes = []*gatewayv1.HTTPRoute{route(t, `{metadata: {name: r, namespace: shop}, spec: {parentRefs: `+tc.parents+`,
				rules: [{backendRefs: [{name: ratings, port: 8080}]}]}}`)}
			res := Build(in)
			checkWellFormed(t, res)
			status := metav1.ConditionFalse
			if tc.reason == ReasonAccepted {
				status = metav1.ConditionTrue
			}
			wantCondition(t, statusOf(t, res, KindHTTPRoute, "r", tc.parent), ConditionAccepted, status, tc.reason, tc.fragment)
			attached := len(portRoutes(t, res, "reviews", 9080)) > 0
			if attached != (status == metav1.ConditionTrue) {
				t.Errorf("attached = %v", attached)
			}
		})
	}
	t.Run("ingress parent is not ours", func(t *testing.T) {
		in := fixture(t)
		in.HTTPRoutes = []*gatewayv1.HTTPRoute{route(t, `{metadata: {name: r, namespace: shop}, spec: {parentRefs: [{name: ingress}], rules: [{}]}}`)}
		if res := Build(in); len(res.Status) != 0 {
			t.Fatalf("status = %+v, want none", res.Status)
		}
	})
}

func TestHTTPRoutePrecedence(t *testing.T) {
	in := fixture(t)
	older := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	newer := metav1.NewTime(older.Add(time.Hour))
	a := route(t, hr(`[{matches: [{path: {value: /}}], backendRefs: [{name: reviews, port: 9080}]},
		{matches: [{path: {value: /api}}, {path: {value: /api}, method: GET}], backendRefs: [{name: reviews, port: 9080}]},
		{matches: [{path: {type: RegularExpression, value: "/.*"}}], backendRefs: [{name: reviews, port: 9080}]}]`))
	a.Name, a.CreationTimestamp = "b-newer", newer
	b := route(t, hr(`[{matches: [{path: {value: /api}, headers: [{name: x, value: "1"}]}, {path: {type: Exact, value: /api/v1}},
		{path: {value: /api/v1}}], backendRefs: [{name: reviews, port: 9080}]},
		{matches: [{path: {value: /api}, method: GET}], backendRefs: [{name: reviews, port: 9080}]}]`))
	b.Name, b.CreationTimestamp = "z-older", older
	c := route(t, hr(`[{matches: [{path: {value: /api}, method: GET}], backendRefs: [{name: reviews, port: 9080}]}]`))
	c.Name, c.CreationTimestamp = "a-newer", newer
	in.HTTPRoutes = []*gatewayv1.HTTPRoute{a, b, c}
	var got []string
	for _, r := range portRoutes(t, Build(in), "reviews", 9080) {
		got = append(got, r.Name)
	}
	want := []string{
		"HTTPRoute/shop/z-older/0/1", // exact /api/v1
		"HTTPRoute/shop/z-older/0/2", // prefix /api/v1 (longest)
		"HTTPRoute/shop/z-older/1/0", // /api + method, oldest
		"HTTPRoute/shop/a-newer/0/0", // /api + method, same age: a < b
		"HTTPRoute/shop/b-newer/1/1", // /api + method
		"HTTPRoute/shop/z-older/0/0", // /api + header
		"HTTPRoute/shop/b-newer/1/0", // /api
		"HTTPRoute/shop/b-newer/0/0", // /
		"HTTPRoute/shop/b-newer/2/0", // regex
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order =\n%v\nwant\n%v", got, want)
	}
	// Input order does not matter.
	in.HTTPRoutes = []*gatewayv1.HTTPRoute{c, b, a}
	var again []string
	for _, r := range portRoutes(t, Build(in), "reviews", 9080) {
		again = append(again, r.Name)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("order with other input order = %v", again)
	}
}
