package suite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

const waypointNS = "wp-e2e"

const waypointGateway = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: wp-e2e}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
`

// waypointEnv is the scenario of TestE2EWaypoint: a client on node-a; reviews v1 and v2
// on node-b behind Services reviews (both), reviews-v1, reviews-v2 and details (v1
// only); a mirror echo server; and the namespace's waypoint.
type waypointEnv struct {
	client                   *corev1.Pod
	reviews, details, mirror string // cluster IPs
}

func (w *waypointEnv) get(ctx context.Context, vip, path string, count int, extra ...string) ([]echo.HTTPResult, error) {
	return httpFrom(ctx, w.client, "http://"+vip+path, count, extra...)
}

// TestE2EWaypoint is issue 5's acceptance against the local cluster: a waypoint Gateway
// becomes a running waypoint (F-WP-1); services labelled istio.io/use-waypoint go
// through it (F-WP-2) and get HTTPRoute and VirtualService routing, faults, timeouts,
// retries and mirroring (F-WP-4, F-WP-5) and L7 authorization (F-SEC-4); the
// destination sees the waypoint's identity, so an L4 policy allowing only the waypoint
// blocks direct bypass; removing the label bypasses the waypoint again.
func TestE2EWaypoint(t *testing.T) {
	ctx := setup(t, 8*time.Minute)
	newNamespace(ctx, t, waypointNS, true)
	w := &waypointEnv{client: sleeper(ctx, t, waypointNS, "client", "node-a")}
	versionedEcho(ctx, t, waypointNS, "reviews", "v1", "node-b")
	versionedEcho(ctx, t, waypointNS, "reviews", "v2", "node-b")
	echoServer(ctx, t, waypointNS, "mirror", "node-a")
	w.reviews = httpService(ctx, t, waypointNS, "reviews", map[string]string{"app": "reviews"})
	httpService(ctx, t, waypointNS, "reviews-v1", map[string]string{"app": "reviews", "version": "v1"})
	httpService(ctx, t, waypointNS, "reviews-v2", map[string]string{"app": "reviews", "version": "v2"})
	w.details = httpService(ctx, t, waypointNS, "details", map[string]string{"app": "reviews", "version": "v1"})
	mirrorSvc, err := env.Client.CoreV1().Services(waypointNS).Get(ctx, "mirror", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.mirror = mirrorSvc.Spec.ClusterIP

	applyYAML(ctx, t, waypointGateway) // for the whole test; its last subtest deletes it
	t.Run("gateway makes its objects and status", func(t *testing.T) { testWaypointObjects(ctx, t) })
	labelService(ctx, t, waypointNS, "reviews", "istio.io/use-waypoint", "waypoint")
	labelService(ctx, t, waypointNS, "details", "istio.io/use-waypoint", "waypoint")
	if err := testbed.Poll(ctx, "reviews traffic through the waypoint", func(ctx context.Context) (bool, error) {
		res, err := w.get(ctx, w.reviews, "/", 1)
		return err == nil && res[0].Status == 200 && viaWaypoint(res[0]), fmt.Errorf("%+v %v", res, err)
	}); err != nil {
		t.Fatal(err)
	}
	t.Run("httproute weights and header match", func(t *testing.T) { testWaypointHTTPRoute(ctx, t, w) })
	t.Run("l7 deny", func(t *testing.T) { testWaypointDeny(ctx, t, w) })
	t.Run("virtualservice fault timeout retry mirror", func(t *testing.T) { testWaypointVirtualService(ctx, t, w) })
	t.Run("unsupported input gets a condition and fails closed", func(t *testing.T) { testWaypointUnsupported(ctx, t, w) })
	t.Run("destination sees the waypoint identity", func(t *testing.T) { testWaypointOnlyPolicy(ctx, t, w) })
	t.Run("removing the label bypasses the waypoint", func(t *testing.T) {
		labelService(ctx, t, waypointNS, "reviews", "istio.io/use-waypoint", "")
		if err := testbed.Poll(ctx, "reviews traffic bypassing the waypoint", func(ctx context.Context) (bool, error) {
			res, err := w.get(ctx, w.reviews, "/", 1)
			return err == nil && res[0].Status == 200 && !viaWaypoint(res[0]), fmt.Errorf("%+v %v", res, err)
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deleting the gateway removes its objects", func(t *testing.T) {
		deleteYAML(ctx, t, waypointGateway)
		if err := testbed.Poll(ctx, "waypoint objects gone", func(ctx context.Context) (bool, error) {
			_, err := env.Client.AppsV1().Deployments(waypointNS).Get(ctx, "waypoint", metav1.GetOptions{})
			_, serr := env.Client.CoreV1().Services(waypointNS).Get(ctx, "waypoint", metav1.GetOptions{})
			return apierrors.IsNotFound(err) && apierrors.IsNotFound(serr), fmt.Errorf("deployment: %v, service: %v", err, serr)
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// testWaypointObjects: once the Gateway is applied, its ServiceAccount, Deployment and
// Service appear within 5 s, owned by it, and it becomes Programmed once the waypoint
// runs.
func testWaypointObjects(ctx context.Context, t *testing.T) {
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := testbed.Poll(quick, "waypoint objects", func(ctx context.Context) (bool, error) {
		var errs []error
		sa, err := env.Client.CoreV1().ServiceAccounts(waypointNS).Get(ctx, "waypoint", metav1.GetOptions{})
		errs = append(errs, err, ownedByGateway(sa.GetOwnerReferences()))
		d, err := env.Client.AppsV1().Deployments(waypointNS).Get(ctx, "waypoint", metav1.GetOptions{})
		errs = append(errs, err, ownedByGateway(d.GetOwnerReferences()))
		s, err := env.Client.CoreV1().Services(waypointNS).Get(ctx, "waypoint", metav1.GetOptions{})
		errs = append(errs, err, ownedByGateway(s.GetOwnerReferences()))
		err = errors.Join(errs...)
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Poll(ctx, "gateway Programmed", func(ctx context.Context) (bool, error) {
		out, err := env.Kube.Kubectl(ctx, kubeBin(), "get", "gateway", "-n", waypointNS, "waypoint",
			"-o", `jsonpath={.status.conditions[?(@.type=="Programmed")].status}`).CombinedOutput()
		return err == nil && string(out) == "True", fmt.Errorf("programmed %q: %v", out, err)
	}); err != nil {
		t.Fatal(err)
	}
}

func ownedByGateway(refs []metav1.OwnerReference) error {
	for _, r := range refs {
		if r.Kind == "Gateway" && r.Name == "waypoint" && r.Controller != nil && *r.Controller {
			return nil
		}
	}
	return fmt.Errorf("not owned by the Gateway: %v", refs)
}

const reviewsRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: wp-e2e}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - backendRefs: [{name: reviews-v1, port: 80, weight: 90}, {name: reviews-v2, port: 80, weight: 10}]
`

// testWaypointHTTPRoute: a header match sends only matching requests to v2, and a
// 90/10 split lands within 4 points of 90/10 over 1,000 requests.
func testWaypointHTTPRoute(ctx context.Context, t *testing.T, w *waypointEnv) {
	applyYAML(ctx, t, reviewsRoute)
	if err := testbed.Poll(ctx, "header match routing to v2", func(ctx context.Context) (bool, error) {
		res, err := w.get(ctx, w.reviews, "/", 20, "--header", "x-canary: yes")
		pods, _ := tally(res)
		return err == nil && pods["reviews-v2"] == 20, fmt.Errorf("answers %v: %v", pods, err)
	}); err != nil {
		t.Fatal(err)
	}
	res, err := w.get(ctx, w.reviews, "/", 1000)
	if err != nil {
		t.Fatal(err)
	}
	pods, statuses := tally(res)
	if statuses[200] != 1000 || pods["reviews-v1"] < 860 || pods["reviews-v1"] > 940 {
		t.Fatalf("90/10 split over 1000 requests: pods %v, statuses %v; want v1 within 860..940", pods, statuses)
	}
}

// testWaypointDeny: an L7 DENY on POST /admin targeting the Service gives 403 while
// GET / passes.
func testWaypointDeny(ctx context.Context, t *testing.T, w *waypointEnv) {
	applyYAML(ctx, t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: wp-e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: DENY
  rules: [{to: [{operation: {methods: [POST], paths: [/admin]}}]}]
`)
	if err := testbed.Poll(ctx, "POST /admin denied", func(ctx context.Context) (bool, error) {
		res, err := w.get(ctx, w.reviews, "/admin", 1, "--body", "x")
		return err == nil && res[0].Status == 403, fmt.Errorf("%+v %v", res, err)
	}); err != nil {
		t.Fatal(err)
	}
	res, err := w.get(ctx, w.reviews, "/", 5)
	if _, st := tally(res); err != nil || st[200] != 5 {
		t.Fatalf("GET / with the deny policy: %v %v", st, err)
	}
}

const detailsVirtualService = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: wp-e2e}
spec:
  hosts: [details]
  http:
  - match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 50}}}
    route: [{destination: {host: details}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: 1s
    route: [{destination: {host: details}}]
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: details}}]
  - route: [{destination: {host: details}}]
    mirror: {host: mirror}
    mirrorPercentage: {value: 100}
`

// testWaypointVirtualService: a 50 % abort yields 500±60 errors over 1,000 requests, a
// 1 s timeout cuts a 3 s backend, retries make a backend failing every other request
// fully successful, and mirroring delivers copies to the mirror.
func testWaypointVirtualService(ctx context.Context, t *testing.T, w *waypointEnv) {
	applyYAML(ctx, t, detailsVirtualService)
	if err := testbed.Poll(ctx, "fault route active", func(ctx context.Context) (bool, error) {
		res, err := w.get(ctx, w.details, "/fault", 20)
		_, st := tally(res)
		return err == nil && st[500] > 0, fmt.Errorf("statuses %v: %v", st, err)
	}); err != nil {
		t.Fatal(err)
	}
	res, err := w.get(ctx, w.details, "/fault", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, st := tally(res); st[500] < 440 || st[500] > 560 || st[500]+st[200] != 1000 {
		t.Errorf("50%% abort over 1000 requests: statuses %v, want 500±60 of 500", st)
	}

	start := time.Now()
	res, err = w.get(ctx, w.details, "/slow?delay=3s", 1)
	if took := time.Since(start); err != nil || res[0].Status != 504 || took > 2500*time.Millisecond {
		t.Errorf("1 s timeout on a 3 s backend: %+v %v after %v, want 504 within 2.5 s", res, err, took)
	}

	res, err = w.get(ctx, w.details, "/flaky?failevery=2", 50)
	if _, st := tally(res); err != nil || st[200] != 50 {
		t.Errorf("retries over a backend failing every other request: statuses %v, %v; want 50 x 200", st, err)
	}

	path := fmt.Sprintf("/mirrored-%d", rand.Uint32())
	if res, err := w.get(ctx, w.details, path, 20); err != nil {
		t.Fatal(err)
	} else if _, st := tally(res); st[200] != 20 {
		t.Fatalf("mirrored requests: %v", st)
	}
	if err := testbed.Poll(ctx, "mirror copies", func(ctx context.Context) (bool, error) {
		res, err := httpFrom(ctx, w.client, "http://"+w.mirror+echo.CountPath+"?path="+path, 1)
		if err != nil {
			return false, err
		}
		return res[0].Status == 200 && res[0].Count >= 20, fmt.Errorf("mirror got %d copies", res[0].Count)
	}); err != nil {
		t.Fatal(err)
	}
}

// testWaypointOnlyPolicy: an L4 ALLOW policy on reviews' pods naming only the
// waypoint's identity keeps traffic through the waypoint working (the destination sees
// the waypoint's SPIFFE identity) and blocks direct connections.
func testWaypointOnlyPolicy(ctx context.Context, t *testing.T, w *waypointEnv) {
	applyYAML(ctx, t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-waypoint, namespace: wp-e2e}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/wp-e2e/sa/waypoint]}}]}]
`)
	if err := waitPolicy(ctx, "node-b", waypointNS+"/only-waypoint"); err != nil {
		t.Fatal(err)
	}
	res, err := w.get(ctx, w.reviews, "/", 10)
	if _, st := tally(res); err != nil || st[200] != 10 {
		t.Fatalf("through the waypoint with only-waypoint: %v %v", st, err)
	}
	v1, err := env.Client.CoreV1().Pods(waypointNS).Get(ctx, "reviews-v1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = httpFrom(ctx, w.client, "http://"+podAddr(v1, 8080)+"/", 1)
	if err == nil && res[0].Status == 200 {
		t.Fatalf("direct request to %s bypassing the waypoint was allowed: %+v", v1.Name, res)
	}
}

// testWaypointUnsupported: an HTTPRoute rule with a filter the waypoint does not
// implement and an ALLOW policy using a field it cannot evaluate are reported on the
// objects' status; the rule answers 500 instead of forwarding without its filter, and
// the policy allows nothing rather than everything.
func testWaypointUnsupported(ctx context.Context, t *testing.T, w *waypointEnv) {
	applyYAML(ctx, t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-ext, namespace: wp-e2e}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /ext}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: x}}]
    backendRefs: [{name: reviews-v1, port: 80}]
  - backendRefs: [{name: reviews-v1, port: 80}]
`)
	if err := testbed.Poll(ctx, "HTTPRoute with an ExtensionRef filter reported and closed", func(ctx context.Context) (bool, error) {
		cond, err := env.Kube.Kubectl(ctx, kubeBin(), "get", "httproute", "-n", waypointNS, "reviews-ext",
			"-o", `jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].reason}`).CombinedOutput()
		if err != nil || string(cond) != "UnsupportedValue" {
			return false, fmt.Errorf("accepted reason %q: %v", cond, err)
		}
		res, err := w.get(ctx, w.reviews, "/ext", 1)
		return err == nil && res[0].Status == 500, fmt.Errorf("GET /ext: %+v %v", res, err)
	}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-by-ip, namespace: wp-e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]
`)
	if err := testbed.Poll(ctx, "ALLOW policy with ipBlocks reported and allowing nothing", func(ctx context.Context) (bool, error) {
		cond, err := env.Kube.Kubectl(ctx, kubeBin(), "get", "authorizationpolicy", "-n", waypointNS, "allow-by-ip",
			"-o", `jsonpath={.status.conditions[?(@.type=="Accepted")].message}`).CombinedOutput()
		if err != nil || len(cond) == 0 {
			return false, fmt.Errorf("accepted message %q: %v", cond, err)
		}
		res, err := w.get(ctx, w.reviews, "/", 1)
		return err == nil && res[0].Status == 403, fmt.Errorf("GET /: %+v %v", res, err)
	}); err != nil {
		t.Fatal(err)
	}
}
