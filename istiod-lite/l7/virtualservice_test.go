package l7

import (
	"reflect"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// subsetsDR defines subsets v1 and v2 of reviews.
const subsetsDR = `{metadata: {name: reviews, namespace: shop}, spec: {host: reviews,
	subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}}`

func vsYAML(http string) string {
	return `{metadata: {name: v, namespace: shop, generation: 2}, spec: {hosts: [reviews], http: ` + http + `}}`
}

func TestVirtualServiceRoutes(t *testing.T) {
	one := func(b Backend) []WeightedBackend { return []WeightedBackend{{b, 1}} }
	abort500 := &Fault{AbortPercent: 100, AbortStatus: 500}
	tests := []struct {
		name      string
		http      string
		want      []Route
		reason    string
		fragments []string
	}{
		{
			name: "subsets, weights and header match",
			http: `[{match: [{headers: {end-user: {exact: jason}}}], route: [{destination: {host: reviews, subset: v2}}]},
				{route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v1}, weight: 90}, {destination: {host: reviews.shop, subset: v2}, weight: 10}]}]`,
			want: []Route{
				{Name: "VirtualService/shop/v/0/0", Match: Match{Headers: []StringMatch{{Name: "end-user", Value: "jason"}}}, Backends: one(reviews(9080, "v2"))},
				{Name: "VirtualService/shop/v/1/0", Backends: []WeightedBackend{{reviews(9080, "v1"), 90}, {reviews(9080, "v2"), 10}}},
			},
			reason: ReasonAccepted,
		},
		{
			name: "fault, timeout, retries, mirror",
			http: `[{fault: {delay: {fixedDelay: 2s, percentage: {value: 10}}, abort: {httpStatus: 503, percentage: {value: 50}}},
				timeout: 1s, retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,reset,503,unavailable"},
				mirror: {host: ratings, port: {number: 8080}}, mirrorPercentage: {value: 5},
				route: [{destination: {host: reviews}}]}]`,
			want: []Route{{Name: "VirtualService/shop/v/0/0", Backends: one(reviews(9080, "")),
				Fault:   &Fault{DelayPercent: 10, Delay: 2 * time.Second, AbortPercent: 50, AbortStatus: 503},
				Timeout: time.Second,
				Retry:   &Retry{Attempts: 3, PerTryTimeout: 500 * time.Millisecond, On: []string{"5xx", "reset", "retriable-status-codes"}, StatusCodes: []uint32{503}},
				Mirrors: []Mirror{{Backend{Hostname: "ratings.shop.svc.cluster.local", Port: 8080}, 5}}}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"unavailable not supported"},
		},
		{
			name: "uri matches and rewrites",
			http: `[{match: [{uri: {prefix: /api}}, {uri: {exact: /x}}, {uri: {prefix: /Y}, ignoreUriCase: true}, {}],
				rewrite: {uri: /v2, authority: new}, headers: {request: {set: {X-A: "1"}, remove: [x-b]}, response: {add: {x-c: "2"}}},
				route: [{destination: {host: reviews}}]}]`,
			want: []Route{
				{Name: "VirtualService/shop/v/0/0", Match: Match{Path: PathMatch{PathRaw, "/api"}}, Backends: one(reviews(9080, "")),
					Rewrite:         &Rewrite{Host: "new", PrefixRewrite: "/v2", PrefixSet: true},
					RequestHeaders:  HeaderMutation{Set: []Header{{"x-a", "1"}}, Remove: []string{"x-b"}},
					ResponseHeaders: HeaderMutation{Add: []Header{{"x-c", "2"}}}},
				{Name: "VirtualService/shop/v/0/1", Match: Match{Path: PathMatch{PathExact, "/x"}}, Backends: one(reviews(9080, "")),
					Rewrite:         &Rewrite{Host: "new", Path: "/v2"},
					RequestHeaders:  HeaderMutation{Set: []Header{{"x-a", "1"}}, Remove: []string{"x-b"}},
					ResponseHeaders: HeaderMutation{Add: []Header{{"x-c", "2"}}}},
				{Name: "VirtualService/shop/v/0/2", Match: Match{Path: PathMatch{PathRegex, "(?i)/Y.*"}}, Backends: one(reviews(9080, "")), Fault: abort500},
				{Name: "VirtualService/shop/v/0/3", Match: Match{Path: PathMatch{PathRaw, "/"}}, Backends: one(reviews(9080, "")),
					Rewrite:         &Rewrite{Host: "new", PrefixRewrite: "/v2", PrefixSet: true},
					RequestHeaders:  HeaderMutation{Set: []Header{{"x-a", "1"}}, Remove: []string{"x-b"}},
					ResponseHeaders: HeaderMutation{Add: []Header{{"x-c", "2"}}}},
			},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"http[0].match[2]", "prefix rewrite"},
		},
		{
			name: "method, authority, query and withoutHeaders",
			http: `[{match: [{method: {exact: POST}, authority: {prefix: api.}, queryParams: {q: {regex: "a+"}}, withoutHeaders: {x-debug: {}}}],
				route: [{destination: {host: reviews}}]}]`,
			want: []Route{{Name: "VirtualService/shop/v/0/0", Match: Match{Method: "POST",
				Headers: []StringMatch{{Name: ":authority", Regex: true, Value: `api\..*`}, {Name: "x-debug", Regex: true, Value: ".*", Invert: true}},
				Query:   []StringMatch{{Name: "q", Regex: true, Value: "a+"}}}, Backends: one(reviews(9080, ""))}},
			reason: ReasonAccepted,
		},
		{
			name:   "redirect",
			http:   `[{match: [{uri: {prefix: /old}}], redirect: {uri: /new, authority: x.example, port: 8080, scheme: https}}]`,
			want:   []Route{{Name: "VirtualService/shop/v/0/0", Match: Match{Path: PathMatch{PathRaw, "/old"}}, Redirect: &Redirect{Scheme: "https", Host: "x.example", Port: 8080, Path: "/new", StatusCode: 301}}},
			reason: ReasonAccepted,
		},
		{
			name:      "undefined subset gets 500s",
			http:      `[{route: [{destination: {host: reviews, subset: v9}, weight: 50}, {destination: {host: reviews, subset: v1}, weight: 50}]}]`,
			want:      []Route{{Name: "VirtualService/shop/v/0/0", Backends: []WeightedBackend{{reviews(9080, "v1"), 50}}, Fault: &Fault{AbortPercent: 50, AbortStatus: 500}}},
			reason:    ReasonBackendNotFound,
			fragments: []string{`subset "v9"`},
		},
		{
			name:      "unknown host",
			http:      `[{route: [{destination: {host: nope}}]}]`,
			want:      []Route{{Name: "VirtualService/shop/v/0/0", Backends: one(reviews(9080, "")), Fault: abort500}},
			reason:    ReasonBackendNotFound,
			fragments: []string{"nope.shop.svc.cluster.local is not a known Service"},
		},
		{
			name:      "corsPolicy answers 500",
			http:      `[{corsPolicy: {allowOrigins: [{exact: x}]}, route: [{destination: {host: reviews}}]}]`,
			want:      []Route{{Name: "VirtualService/shop/v/0/0", Backends: one(reviews(9080, "")), Fault: abort500}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"corsPolicy is not supported"},
		},
		{
			name:      "delegate answers 500",
			http:      `[{delegate: {name: x}}]`,
			want:      []Route{{Name: "VirtualService/shop/v/0/0", Backends: one(reviews(9080, "")), Fault: abort500}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"delegate"},
		},
		{
			name:      "source match dropped",
			http:      `[{match: [{sourceLabels: {app: x}}], route: [{destination: {host: reviews, subset: v2}}]}, {route: [{destination: {host: reviews}}]}]`,
			want:      []Route{{Name: "VirtualService/shop/v/1/0", Backends: one(reviews(9080, ""))}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"sourceLabels"},
		},
		{
			name:      "grpc abort",
			http:      `[{fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}}, route: [{destination: {host: reviews}}]}]`,
			want:      []Route{{Name: "VirtualService/shop/v/0/0", Backends: one(reviews(9080, "")), Fault: abort500}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"httpStatus"},
		},
		{
			name:   "match on another port",
			http:   `[{match: [{port: 5432}], route: [{destination: {host: reviews, subset: v2}}]}, {route: [{destination: {host: reviews}}]}]`,
			want:   []Route{{Name: "VirtualService/shop/v/1/0", Backends: one(reviews(9080, ""))}},
			reason: ReasonAccepted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.VirtualServices = []*networkingv1.VirtualService{vs(t, vsYAML(tc.http))}
			in.DestinationRules = []*networkingv1.DestinationRule{dr(t, subsetsDR)}
			res := Build(in)
			checkWellFormed(t, res)
			if got := portRoutes(t, res, "reviews", 9080); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes =\n%+v\nwant\n%+v", got, tc.want)
			}
			status := metav1.ConditionFalse
			if tc.reason == ReasonAccepted {
				status = metav1.ConditionTrue
			}
			st := statusOf(t, res, KindVirtualService, "v", "")
			wantCondition(t, st, ConditionAccepted, status, tc.reason, tc.fragments...)
			if st.Generation != 2 || condition(t, st, ConditionAccepted).ObservedGeneration != 2 {
				t.Errorf("generation = %d", st.Generation)
			}
		})
	}
}

func TestVirtualServiceSelection(t *testing.T) {
	older := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Run("HTTPRoute wins", func(t *testing.T) {
		in := fixture(t)
		in.VirtualServices = []*networkingv1.VirtualService{vs(t, vsYAML(`[{route: [{destination: {host: reviews}}]}]`))}
		in.HTTPRoutes = []*gatewayv1.HTTPRoute{route(t, hr(`[{backendRefs: [{name: ratings, port: 8080}]}]`))}
		res := Build(in)
		if got := portRoutes(t, res, "reviews", 9080); len(got) != 1 || got[0].Name != "HTTPRoute/shop/r/0/0" {
			t.Fatalf("routes = %+v", got)
		}
		st := statusOf(t, res, KindVirtualService, "v", "")
		wantCondition(t, st, ConditionAccepted, metav1.ConditionFalse, ReasonConflicted, "HTTPRoute")
	})
	t.Run("oldest VirtualService wins", func(t *testing.T) {
		in := fixture(t)
		a := vs(t, vsYAML(`[{route: [{destination: {host: reviews, subset: v1}}]}]`))
		b := vs(t, vsYAML(`[{route: [{destination: {host: reviews, subset: v2}}]}]`))
		a.CreationTimestamp = metav1.NewTime(older.Add(time.Minute))
		b.Name, b.CreationTimestamp = "b", older
		in.VirtualServices = []*networkingv1.VirtualService{a, b}
		in.DestinationRules = []*networkingv1.DestinationRule{dr(t, subsetsDR)}
		res := Build(in)
		if got := portRoutes(t, res, "reviews", 9080); len(got) != 1 || got[0].Backends[0].Subset != "v2" {
			t.Fatalf("routes = %+v", got)
		}
		wantCondition(t, statusOf(t, res, KindVirtualService, "v", ""), ConditionAccepted, metav1.ConditionFalse, ReasonConflicted, "shop/b")
		wantCondition(t, statusOf(t, res, KindVirtualService, "b", ""), ConditionAccepted, metav1.ConditionTrue, ReasonAccepted)
	})
	for _, tc := range []struct{ name, spec, reason, fragment string }{
		{"not bound", `{hosts: [outside.other.svc.cluster.local], http: [{route: [{destination: {host: outside.other}}]}]}`, ReasonNoMatchingParent, "no host"},
		{"wildcard", `{hosts: ["*.shop.svc.cluster.local"], http: [{route: [{destination: {host: reviews}}]}]}`, ReasonUnsupportedValue, "wildcard"},
		{"ingress gateway", `{hosts: [reviews], gateways: [ingress], http: [{route: [{destination: {host: reviews}}]}]}`, ReasonUnsupportedValue, "mesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.VirtualServices = []*networkingv1.VirtualService{vs(t, `{metadata: {name: v, namespace: shop}, spec: `+tc.spec+`}`)}
			res := Build(in)
			wantCondition(t, statusOf(t, res, KindVirtualService, "v", ""), ConditionAccepted, metav1.ConditionFalse, tc.reason, tc.fragment)
			if got := portRoutes(t, res, "reviews", 9080); len(got) != 0 {
				t.Fatalf("routes = %+v", got)
			}
		})
	}
}
