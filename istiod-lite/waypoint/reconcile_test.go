package waypoint

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// applies counts the server-side applies the controller sent.
func applies(kc *k8sfake.Clientset) int {
	n := 0
	for _, a := range kc.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetPatchType() == types.ApplyPatchType {
			n++
		}
	}
	return n
}

func reconcileOnce(t *testing.T, r *run, gw *gatewayv1.Gateway) *gatewayv1.Gateway {
	t.Helper()
	if err := r.reconcileGateway(t.Context(), types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	got, err := r.gateway.GatewayV1().Gateways(gw.Namespace).Get(t.Context(), gw.Name, metav1.GetOptions{})
	must(t, err)
	return got
}

// TestInvalidGateways: Accepted False with a reason and message, Programmed False
// Invalid, and nothing deployed.
func TestInvalidGateways(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mutate     func(*gatewayv1.Gateway)
		reason     string
		message    string
		listenerRs []string
	}{
		{"http protocol", func(g *gatewayv1.Gateway) { g.Spec.Listeners[0].Protocol = gatewayv1.HTTPProtocolType },
			ReasonUnsupportedProtocol, `protocol "HTTP"`, []string{"UnsupportedProtocol"}},
		{"wrong port", func(g *gatewayv1.Gateway) { g.Spec.Listeners[0].Port = 8080 },
			ReasonInvalid, "port 8080", []string{"PortUnavailable"}},
		{"wrong listener name", func(g *gatewayv1.Gateway) { g.Spec.Listeners[0].Name = "hbone" },
			ReasonInvalid, `name must be "mesh"`, []string{"UnsupportedValue"}},
		{"two listeners", func(g *gatewayv1.Gateway) {
			g.Spec.Listeners = append(g.Spec.Listeners, gatewayv1.Listener{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType})
		}, ReasonInvalid, "exactly one listener", []string{"Accepted", "UnsupportedProtocol"}},
		{"no listeners", func(g *gatewayv1.Gateway) { g.Spec.Listeners = nil }, ReasonInvalid, "not 0", nil},
		{"name not a service name", func(g *gatewayv1.Gateway) { g.Name = "wp.v1" }, ReasonInvalid, "cannot name the waypoint Service", []string{"Accepted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := waypointGateway("shop", "wp")
			tc.mutate(gw)
			kc, gc := newFakes()
			r := testRun(t, kc, gc, testConfig(), ownedClass(DefaultControllerName), gw)
			got := reconcileOnce(t, r, gw)

			acc, err := condition(got.Status.Conditions, "Accepted")
			must(t, err)
			if acc.Status != metav1.ConditionFalse || acc.Reason != tc.reason || !strings.Contains(acc.Message, tc.message) {
				t.Errorf("Accepted = %s/%s %q, want False/%s containing %q", acc.Status, acc.Reason, acc.Message, tc.reason, tc.message)
			}
			prog, err := condition(got.Status.Conditions, "Programmed")
			must(t, err)
			if prog.Status != metav1.ConditionFalse || prog.Reason != ReasonInvalid {
				t.Errorf("Programmed = %s/%s", prog.Status, prog.Reason)
			}
			var reasons []string
			for _, l := range got.Status.Listeners {
				c, err := condition(l.Conditions, "Accepted")
				must(t, err)
				reasons = append(reasons, c.Reason)
			}
			if strings.Join(reasons, ",") != strings.Join(tc.listenerRs, ",") {
				t.Errorf("listener Accepted reasons = %v, want %v", reasons, tc.listenerRs)
			}
			if n := applies(kc); n != 0 {
				t.Errorf("%d objects applied for an invalid Gateway", n)
			}
			if len(got.Status.Addresses) != 0 {
				t.Errorf("addresses = %v", got.Status.Addresses)
			}
		})
	}
}

// TestLeftAlone: Gateways this controller must not deploy.
func TestLeftAlone(t *testing.T) {
	deleting := waypointGateway("shop", "wp")
	deleting.DeletionTimestamp = &metav1.Time{}
	deleting.Finalizers = []string{"foregroundDeletion"}
	other := waypointGateway("shop", "wp")
	other.Spec.GatewayClassName = "istio"
	for _, tc := range []struct {
		name  string
		gw    *gatewayv1.Gateway
		class *gatewayv1.GatewayClass
	}{
		{"being deleted", deleting, ownedClass(DefaultControllerName)},
		{"other class", other, ownedClass(DefaultControllerName)},
		{"class of another controller", waypointGateway("shop", "wp"), ownedClass("example.com/other")},
		{"no class yet", waypointGateway("shop", "wp"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc, gc := newFakes()
			r := testRun(t, kc, gc, testConfig(), tc.class, tc.gw)
			got := reconcileOnce(t, r, tc.gw)
			if n := applies(kc); n != 0 {
				t.Errorf("%d objects applied", n)
			}
			if len(got.Status.Conditions) != 0 {
				t.Errorf("status written: %+v", got.Status)
			}
		})
	}
}

// TestStatusConflictRetried: a stale cache's status update conflicts, and the update
// is retried on the current object.
func TestStatusConflictRetried(t *testing.T) {
	kc, gc := newFakes()
	gw := waypointGateway("shop", "wp")
	r := testRun(t, kc, gc, testConfig(), ownedClass(DefaultControllerName), gw)
	conflicts := 0
	gc.PrependReactor("update", "gateways", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && conflicts < 2 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "gateways"}, "wp", errors.New("stale"))
		}
		return false, nil, nil
	})
	got := reconcileOnce(t, r, gw)
	if conflicts != 2 {
		t.Errorf("conflicts = %d", conflicts)
	}
	if c, err := condition(got.Status.Conditions, "Accepted"); err != nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Accepted = %+v, %v", c, err)
	}
}

// TestApplyRefused: an object the API server rejects is reported, not retried hot.
func TestApplyRefused(t *testing.T) {
	kc, gc := newFakes()
	gw := waypointGateway("shop", "wp")
	r := testRun(t, kc, gc, testConfig(), ownedClass(DefaultControllerName), gw)
	kc.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "wp", nil)
	})
	got := reconcileOnce(t, r, gw)
	prog, err := condition(got.Status.Conditions, "Programmed")
	must(t, err)
	if prog.Status != metav1.ConditionFalse || prog.Reason != ReasonInvalid || !strings.Contains(prog.Message, "apply Deployment shop/wp") {
		t.Errorf("Programmed = %s/%s %q", prog.Status, prog.Reason, prog.Message)
	}

	// A transient failure is returned for a retry.
	kc.ReactionChain = kc.ReactionChain[1:] // drop the Invalid reactor
	kc.PrependReactor("patch", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd down")
	})
	if err := r.reconcileGateway(t.Context(), types.NamespacedName{Namespace: "shop", Name: "wp"}); err == nil {
		t.Error("reconcile succeeded despite an unavailable API server")
	}
}

// TestProgrammed is the table of the Programmed condition.
func TestProgrammed(t *testing.T) {
	gw := waypointGateway("shop", "wp")
	ok := validate(gw)
	bad := validate(&gatewayv1.Gateway{ObjectMeta: gw.ObjectMeta})
	for _, tc := range []struct {
		name   string
		o      observed
		status metav1.ConditionStatus
		reason string
	}{
		{"not accepted", observed{verdict: bad, available: 1, clusterIPs: []string{"10.0.0.1"}}, metav1.ConditionFalse, "Invalid"},
		{"apply refused", observed{verdict: ok, applyErr: errors.New("x"), available: 1, clusterIPs: []string{"10.0.0.1"}}, metav1.ConditionFalse, "Invalid"},
		{"config error", observed{verdict: ok, configErr: errors.New("x"), available: 1, clusterIPs: []string{"10.0.0.1"}}, metav1.ConditionFalse, "Invalid"},
		{"no ip", observed{verdict: ok, available: 1}, metav1.ConditionFalse, "Pending"},
		{"not available", observed{verdict: ok, clusterIPs: []string{"10.0.0.1"}}, metav1.ConditionFalse, "Pending"},
		{"programmed", observed{verdict: ok, available: 2, clusterIPs: []string{"10.0.0.1"}}, metav1.ConditionTrue, "Programmed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := programmed(gw, tc.o)
			if c.Status != tc.status || c.Reason != tc.reason || c.Message == "" {
				t.Errorf("programmed = %s/%s %q, want %s/%s", c.Status, c.Reason, c.Message, tc.status, tc.reason)
			}
		})
	}
}

// TestStatusKeepsTransitionTime: recomputing an unchanged status gives an equal one
// (so nothing is written), and only a condition that changed gets a new time.
func TestStatusKeepsTransitionTime(t *testing.T) {
	cfg, err := testConfig().withDefaults()
	must(t, err)
	gw := waypointGateway("shop", "wp")
	pending := observed{verdict: validate(gw), clusterIPs: []string{"10.0.0.1"}}
	gw.Status = cfg.gatewayStatus(gw, pending)
	long := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	for i := range gw.Status.Conditions {
		gw.Status.Conditions[i].LastTransitionTime = long
	}
	if again := cfg.gatewayStatus(gw, pending); !equality.Semantic.DeepEqual(again, gw.Status) {
		t.Errorf("recomputed status differs:\n%+v\n%+v", again, gw.Status)
	}
	ready := pending
	ready.available = 1
	st := cfg.gatewayStatus(gw, ready)
	acc, _ := condition(st.Conditions, "Accepted")
	prog, _ := condition(st.Conditions, "Programmed")
	if !acc.LastTransitionTime.Equal(&long) || prog.LastTransitionTime.Equal(&long) || prog.Status != metav1.ConditionTrue {
		t.Errorf("Accepted at %v, Programmed %s at %v; want Accepted kept at %v", acc.LastTransitionTime, prog.Status, prog.LastTransitionTime, long)
	}
}
