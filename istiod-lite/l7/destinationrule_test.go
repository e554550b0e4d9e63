package l7

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cluster returns a cluster of waypoint shop/wp by name.
func cluster(t testing.TB, res Result, name string) Cluster {
	t.Helper()
	for _, c := range res.Waypoints[wpKey].Clusters {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no cluster %s", name)
	return Cluster{}
}

func TestDestinationRulePolicy(t *testing.T) {
	in := fixture(t)
	in.VirtualServices = []*networkingv1.VirtualService{vs(t, vsYAML(`[{route: [
		{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, weight: 50}]}]`))}
	in.DestinationRules = []*networkingv1.DestinationRule{dr(t, `{metadata: {name: reviews, namespace: shop}, spec: {host: reviews,
		trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST},
			connectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 1, http2MaxRequests: 20, maxRetries: 3}},
			outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}},
		subsets: [{name: v1, labels: {version: v1}},
			{name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}, connectionPool: {tcp: {maxConnections: 1}}}}]}}`)}
	res := Build(in)
	checkWellFormed(t, res)
	wantCondition(t, statusOf(t, res, KindDestinationRule, "reviews", ""), ConditionAccepted, metav1.ConditionTrue, ReasonAccepted)

	limits := &Limits{MaxConnections: 10, MaxPendingRequests: 1, MaxRequests: 20, MaxRetries: 3}
	outlier := &Outlier{Consecutive5xx: 2, Interval: time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 100}
	tests := []struct {
		name string
		want Cluster
	}{
		{"outbound|9080||" + reviewsHost, Cluster{Backend: reviews(9080, ""), Protocol: ProtocolHTTP, LB: LBLeastRequest, Limits: limits, Outlier: outlier,
			Endpoints: []Endpoint{{netip.MustParseAddr("10.1.0.1"), 9080}, {netip.MustParseAddr("10.1.0.2"), 9080}}}},
		{"outbound|9080|v1|" + reviewsHost, Cluster{Backend: reviews(9080, "v1"), Protocol: ProtocolHTTP, LB: LBLeastRequest, Limits: limits, Outlier: outlier,
			Endpoints: []Endpoint{{netip.MustParseAddr("10.1.0.1"), 9080}}}},
		{"outbound|9080|v2|" + reviewsHost, Cluster{Backend: reviews(9080, "v2"), Protocol: ProtocolHTTP, LB: LBRandom,
			Limits: &Limits{MaxConnections: 1}, Outlier: outlier,
			Endpoints: []Endpoint{{netip.MustParseAddr("10.1.0.2"), 9080}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cluster(t, res, tc.name); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("cluster =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDestinationRuleStatus(t *testing.T) {
	tests := []struct {
		name, spec, reason string
		fragments          []string
	}{
		{"ignored settings", `{host: reviews, trafficPolicy: {tls: {mode: SIMPLE}, loadBalancer: {consistentHash: {useSourceIp: true}},
			connectionPool: {tcp: {connectTimeout: 1s}}, outlierDetection: {consecutiveGatewayErrors: 1},
			portLevelSettings: [{port: {number: 9080}}]}}`, ReasonUnsupportedValue,
			[]string{"trafficPolicy.tls", "consistentHash", "only maxConnections", "only consecutive5xxErrors", "portLevelSettings"}},
		{"subset settings", `{host: reviews, subsets: [{name: v1, trafficPolicy: {outlierDetection: {maxEjectionPercent: 300}}}, {name: v1}, {labels: {a: b}}]}`,
			ReasonUnsupportedValue, []string{"subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent", "duplicate subset", "subsets[2]: a subset needs a name"}},
		{"workload selector", `{host: reviews, workloadSelector: {matchLabels: {app: x}}}`, ReasonUnsupportedValue, []string{"workloadSelector"}},
		{"unknown host", `{host: nope.example.com}`, ReasonNoMatchingParent, []string{"nope.example.com"}},
		{"wildcard host", `{host: "*.example.com"}`, ReasonUnsupportedValue, []string{"wildcard"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.DestinationRules = []*networkingv1.DestinationRule{dr(t, `{metadata: {name: d, namespace: shop}, spec: `+tc.spec+`}`)}
			res := Build(in)
			checkWellFormed(t, res)
			wantCondition(t, statusOf(t, res, KindDestinationRule, "d", ""), ConditionAccepted, metav1.ConditionFalse, tc.reason, tc.fragments...)
		})
	}
	t.Run("conflict", func(t *testing.T) {
		in := fixture(t)
		a := dr(t, `{metadata: {name: a, namespace: shop}, spec: {host: reviews, trafficPolicy: {loadBalancer: {simple: RANDOM}}}}`)
		b := dr(t, `{metadata: {name: b, namespace: shop}, spec: {host: reviews.shop.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}}`)
		a.CreationTimestamp = metav1.NewTime(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC))
		b.CreationTimestamp = metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
		in.DestinationRules = []*networkingv1.DestinationRule{a, b}
		res := Build(in)
		if c := cluster(t, res, "outbound|9080||"+reviewsHost); c.LB != LBLeastRequest {
			t.Fatalf("LB = %q, want the older rule's", c.LB)
		}
		wantCondition(t, statusOf(t, res, KindDestinationRule, "a", ""), ConditionAccepted, metav1.ConditionFalse, ReasonConflicted)
	})
}
