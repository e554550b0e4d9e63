package l7

import (
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// decode reads one object from YAML, failing the test on error.
func decode[T any](t testing.TB, y string) *T {
	t.Helper()
	out := new(T)
	if err := yaml.Unmarshal([]byte(y), out); err != nil {
		t.Fatalf("decode %T: %v\n%s", out, err, y)
	}
	return out
}

// fixture is a namespace "shop" using waypoint "wp": services reviews (http 9080,
// tcp-db 5432; pods v1 10.1.0.1 and v2 10.1.0.2 ready, v3 not ready) and ratings
// (http 8080 -> named port "web" = 8081 on pod 10.1.0.5), plus namespace "other"
// (no waypoint) with service "outside".
func fixture(t testing.TB) Inputs {
	t.Helper()
	return Inputs{
		Namespaces: []*corev1.Namespace{
			decode[corev1.Namespace](t, `{metadata: {name: shop, labels: {istio.io/use-waypoint: wp}}}`),
			decode[corev1.Namespace](t, `{metadata: {name: other}}`),
		},
		Gateways: []*gatewayv1.Gateway{
			decode[gatewayv1.Gateway](t, `{metadata: {name: wp, namespace: shop}, spec: {gatewayClassName: istio-waypoint,
				listeners: [{name: mesh, port: 15008, protocol: HBONE}]}}`),
		},
		Services: []*corev1.Service{
			decode[corev1.Service](t, `{metadata: {name: reviews, namespace: shop}, spec: {clusterIP: 10.96.0.10,
				clusterIPs: [10.96.0.10], selector: {app: reviews},
				ports: [{name: http, port: 9080}, {name: tcp-db, port: 5432, targetPort: 15432}]}}`),
			decode[corev1.Service](t, `{metadata: {name: ratings, namespace: shop}, spec: {clusterIPs: [10.96.0.11],
				selector: {app: ratings}, ports: [{name: grpc-api, port: 8080, targetPort: web}]}}`),
			decode[corev1.Service](t, `{metadata: {name: outside, namespace: other}, spec: {clusterIPs: [10.96.0.20],
				selector: {app: outside}, ports: [{name: http, port: 80, targetPort: 8080}]}}`),
		},
		Pods: []*corev1.Pod{
			readyPod(t, "shop", "reviews-v1", "10.1.0.1", `{app: reviews, version: v1}`),
			readyPod(t, "shop", "reviews-v2", "10.1.0.2", `{app: reviews, version: v2}`),
			decode[corev1.Pod](t, `{metadata: {name: reviews-v3, namespace: shop, labels: {app: reviews, version: v3}},
				status: {phase: Running, podIP: 10.1.0.3, conditions: [{type: Ready, status: "False"}]}}`),
			decode[corev1.Pod](t, `{metadata: {name: ratings-1, namespace: shop, labels: {app: ratings}},
				spec: {containers: [{name: app, ports: [{name: web, containerPort: 8081}]}]},
				status: {phase: Running, podIP: 10.1.0.5, conditions: [{type: Ready, status: "True"}]}}`),
			readyPod(t, "other", "outside-1", "10.2.0.1", `{app: outside}`),
		},
	}
}

func readyPod(t testing.TB, ns, name, ip, labels string) *corev1.Pod {
	return decode[corev1.Pod](t, `{metadata: {name: `+name+`, namespace: `+ns+`, labels: `+labels+`},
		status: {phase: Running, podIP: `+ip+`, conditions: [{type: Ready, status: "True"}]}}`)
}

func route(t testing.TB, y string) *gatewayv1.HTTPRoute {
	return decode[gatewayv1.HTTPRoute](t, y)
}

func vs(t testing.TB, y string) *networkingv1.VirtualService {
	return decode[networkingv1.VirtualService](t, y)
}

func dr(t testing.TB, y string) *networkingv1.DestinationRule {
	return decode[networkingv1.DestinationRule](t, y)
}

func authz(t testing.TB, y string) *securityv1.AuthorizationPolicy {
	return decode[securityv1.AuthorizationPolicy](t, y)
}

var wpKey = types.NamespacedName{Namespace: "shop", Name: "wp"}

// service returns the bound service named name of waypoint shop/wp.
func service(t testing.TB, res Result, name string) Service {
	t.Helper()
	w := res.Waypoints[wpKey]
	if w == nil {
		t.Fatalf("no waypoint %s", wpKey)
	}
	for _, s := range w.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("waypoint %s does not serve %s", wpKey, name)
	return Service{}
}

// portRoutes returns the routes of a service port of waypoint shop/wp.
func portRoutes(t testing.TB, res Result, name string, port uint32) []Route {
	t.Helper()
	for _, p := range service(t, res, name).Ports {
		if p.Number == port {
			return p.Routes
		}
	}
	t.Fatalf("service %s has no port %d", name, port)
	return nil
}

// statusOf returns the status of an object (and parent), failing when absent.
func statusOf(t testing.TB, res Result, kind, name, parent string) ObjectStatus {
	t.Helper()
	for _, s := range res.Status {
		if s.Ref.Kind == kind && s.Ref.Name == name && s.Parent == parent {
			return s
		}
	}
	t.Fatalf("no status for %s %s parent %q in %+v", kind, name, parent, res.Status)
	return ObjectStatus{}
}

// condition returns the condition of a type, failing when absent.
func condition(t testing.TB, s ObjectStatus, typ string) metav1.Condition {
	t.Helper()
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s condition in %+v", typ, s.Conditions)
	return metav1.Condition{}
}

// wantCondition checks a condition's status and reason, and that its message holds
// every fragment.
func wantCondition(t testing.TB, s ObjectStatus, typ string, status metav1.ConditionStatus, reason string, fragments ...string) {
	t.Helper()
	c := condition(t, s, typ)
	if c.Status != status || c.Reason != reason {
		t.Errorf("%s %s: %s condition = %s/%s (%q), want %s/%s", s.Ref.Kind, s.Ref.Name, typ, c.Status, c.Reason, c.Message, status, reason)
	}
	for _, f := range fragments {
		if !strings.Contains(c.Message, f) {
			t.Errorf("%s %s: %s message %q lacks %q", s.Ref.Kind, s.Ref.Name, typ, c.Message, f)
		}
	}
}

// checkWellFormed asserts the invariants every consumer of a Result relies on.
func checkWellFormed(t testing.TB, res Result) {
	t.Helper()
	for k, w := range res.Waypoints {
		if w == nil || w.Namespace != k.Namespace || w.Name != k.Name {
			t.Fatalf("waypoint %s: bad entry %+v", k, w)
		}
		clusters := map[string]bool{}
		for i, c := range w.Clusters {
			if i > 0 && w.Clusters[i-1].Name() >= c.Name() {
				t.Fatalf("clusters not sorted or duplicated at %s", c.Name())
			}
			if c.Protocol != ProtocolHTTP && c.Protocol != ProtocolHTTP2 {
				t.Fatalf("cluster %s: protocol %q", c.Name(), c.Protocol)
			}
			if !slices.IsSortedFunc(c.Endpoints, func(a, b Endpoint) int {
				if d := a.IP.Compare(b.IP); d != 0 {
					return d
				}
				return int(a.Port) - int(b.Port)
			}) {
				t.Fatalf("cluster %s: endpoints not sorted", c.Name())
			}
			clusters[c.Name()] = true
		}
		if !slices.IsSortedFunc(w.Services, func(a, b Service) int { return strings.Compare(a.Hostname, b.Hostname) }) {
			t.Fatalf("services not sorted")
		}
		for _, s := range w.Services {
			if len(s.VIPs) == 0 || !slices.IsSortedFunc(s.VIPs, netip.Addr.Compare) {
				t.Fatalf("service %s: VIPs %v", s.Hostname, s.VIPs)
			}
			for _, p := range s.Ports {
				if !clusters[Backend{Hostname: s.Hostname, Port: p.Number}.Name()] {
					t.Fatalf("service %s port %d: no default cluster", s.Hostname, p.Number)
				}
				if !isHTTP(p.Protocol) && len(p.Routes) > 0 {
					t.Fatalf("service %s port %d: TCP port with routes", s.Hostname, p.Number)
				}
				for _, r := range p.Routes {
					checkRoute(t, r, clusters)
				}
			}
		}
	}
	for i := 1; i < len(res.Status); i++ {
		a, b := res.Status[i-1], res.Status[i]
		if a.Ref == b.Ref && a.Parent >= b.Parent {
			t.Fatalf("status not sorted or duplicated: %+v %+v", a.Ref, b.Ref)
		}
	}
	for _, s := range res.Status {
		for _, c := range s.Conditions {
			if c.Reason == "" || (c.Status != metav1.ConditionTrue && c.Status != metav1.ConditionFalse) {
				t.Fatalf("%+v: bad condition %+v", s.Ref, c)
			}
		}
	}
}

func checkRoute(t testing.TB, r Route, clusters map[string]bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("route %s: "+format, append([]any{r.Name}, args...)...)
	}
	if (len(r.Backends) > 0) == (r.Redirect != nil) {
		fail("needs exactly one of backends and redirect")
	}
	if r.Redirect != nil && (r.Rewrite != nil || len(r.Mirrors) > 0 || r.Retry != nil) {
		fail("redirect with rewrite, mirror or retry")
	}
	var total uint64
	for _, b := range r.Backends {
		total += uint64(b.Weight)
		if !clusters[b.Name()] {
			fail("backend %s has no cluster", b.Name())
		}
	}
	if len(r.Backends) > 1 && total == 0 {
		fail("zero total weight")
	}
	for _, m := range r.Mirrors {
		if !clusters[m.Backend.Name()] || !(m.Percent > 0 && m.Percent <= 100) {
			fail("bad mirror %+v", m)
		}
	}
	switch r.Match.Path.Kind {
	case PathAny:
	case PathExact, PathPrefix, PathRaw:
		if checkPath(r.Match.Path.Value) != nil {
			fail("bad path %q", r.Match.Path.Value)
		}
	case PathRegex:
		if _, err := regexp.Compile(r.Match.Path.Value); err != nil || r.Match.Path.Value == "" {
			fail("bad regex %q", r.Match.Path.Value)
		}
	default:
		fail("path kind %q", r.Match.Path.Kind)
	}
	for _, sm := range append(slices.Clone(r.Match.Headers), r.Match.Query...) {
		if sm.Name == "" || (sm.Regex && checkRegex(sm.Value) != nil) {
			fail("bad string match %+v", sm)
		}
	}
	for _, q := range r.Match.Query {
		if q.Invert {
			fail("inverted query match")
		}
	}
	if f := r.Fault; f != nil {
		for _, p := range []float64{f.DelayPercent, f.AbortPercent} {
			if math.IsNaN(p) || p < 0 || p > 100 {
				fail("fault percent %v", p)
			}
		}
		if f.AbortPercent > 0 && (f.AbortStatus < 200 || f.AbortStatus > 599) {
			fail("abort status %d", f.AbortStatus)
		}
	}
	if rd := r.Redirect; rd != nil && !slices.Contains([]int{0, 301, 302, 303, 307, 308}, rd.StatusCode) {
		fail("redirect code %d", rd.StatusCode)
	}
	if r.Timeout < 0 || (r.Retry != nil && r.Retry.PerTryTimeout < 0) {
		fail("negative timeout")
	}
}
