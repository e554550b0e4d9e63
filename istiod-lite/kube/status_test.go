package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	istiometa "istio.io/api/meta/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// testClock is a settable clock for LastTransitionTime.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var (
	t1 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 = t1.Add(time.Hour)
)

const foreignController = "example.com/other-controller"

// statusRoute is an HTTPRoute in ns "app" with Service parents svc:80 and old, and a
// foreign Gateway parent, whose status holds a foreign entry and a stale one of ours.
func statusRoute() *gatewayv1.HTTPRoute {
	port := gatewayv1.PortNumber(80)
	core, svc := gatewayv1.Group(""), gatewayv1.Kind("Service")
	foreign := gatewayv1.ParentReference{Name: "edge"}
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r", Generation: 3},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{
			{Group: &core, Kind: &svc, Name: "svc", Port: &port},
			foreign,
		}}},
		Status: gatewayv1.HTTPRouteStatus{RouteStatus: gatewayv1.RouteStatus{Parents: []gatewayv1.RouteParentStatus{
			{ParentRef: foreign, ControllerName: foreignController, Conditions: []metav1.Condition{
				{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.NewTime(t1)}}},
			{ParentRef: gatewayv1.ParentReference{Group: &core, Kind: &svc, Name: "old"}, ControllerName: GatewayControllerName,
				Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.NewTime(t1)}}},
		}}},
	}
}

func routeStatus(accepted metav1.ConditionStatus, msg string) []l7.ObjectStatus {
	reason := l7.ReasonAccepted
	if accepted == metav1.ConditionFalse {
		reason = l7.ReasonUnsupportedValue
	}
	return []l7.ObjectStatus{{
		Ref: l7.ObjectRef{Kind: l7.KindHTTPRoute, Namespace: "app", Name: "r"}, Generation: 3, Parent: "Service/app/svc:80",
		Conditions: []metav1.Condition{
			{Type: l7.ConditionAccepted, Status: accepted, Reason: reason, Message: msg, ObservedGeneration: 3},
			{Type: l7.ConditionResolvedRefs, Status: metav1.ConditionTrue, Reason: l7.ReasonResolvedRefs, ObservedGeneration: 3},
		},
	}}
}

func newGatewayFake(t *testing.T, routes ...*gatewayv1.HTTPRoute) *gatewayfake.Clientset {
	t.Helper()
	gc := gatewayfake.NewSimpleClientset()
	for _, r := range routes {
		if _, err := gc.GatewayV1().HTTPRoutes(r.Namespace).Create(context.Background(), r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gc.ClearActions()
	return gc
}

// countActions counts the fake's actions of verb on resource (subresource "status" for updates).
func countActions(f *k8stesting.Fake, verb, resource string) int {
	n := 0
	for _, a := range f.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && (verb != "update" || a.GetSubresource() == "status") {
			n++
		}
	}
	return n
}

func getRoute(t *testing.T, gc *gatewayfake.Clientset) *gatewayv1.HTTPRoute {
	t.Helper()
	hr, err := gc.GatewayV1().HTTPRoutes("app").Get(context.Background(), "r", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return hr
}

// ours returns the route's parent statuses of our controller.
func ours(hr *gatewayv1.HTTPRoute) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	for _, p := range hr.Status.Parents {
		if p.ControllerName == GatewayControllerName {
			out = append(out, p)
		}
	}
	return out
}

func flushOK(t *testing.T, w *StatusWriter) {
	t.Helper()
	if !w.flush(context.Background()) {
		t.Fatal("flush reported failed writes")
	}
}

func TestStatusHTTPRoute(t *testing.T) {
	gc := newGatewayFake(t, statusRoute())
	clock := &testClock{t: t1}
	w := &StatusWriter{Gateway: gc, Logger: testLogger(t), now: clock.now}

	w.Report(routeStatus(metav1.ConditionTrue, ""))
	flushOK(t, w)
	if n := countActions(&gc.Fake, "update", "httproutes"); n != 1 {
		t.Fatalf("first report: %d status updates, want 1", n)
	}
	hr := getRoute(t, gc)
	if len(hr.Status.Parents) != 2 || hr.Status.Parents[0].ControllerName != foreignController {
		t.Fatalf("foreign parent not kept first / stale parent not removed: %+v", hr.Status.Parents)
	}
	mine := ours(hr)
	if len(mine) != 1 {
		t.Fatalf("our parents = %+v, want one", mine)
	}
	ref := mine[0].ParentRef
	if ref.Group == nil || *ref.Group != "" || ref.Kind == nil || *ref.Kind != "Service" || ref.Namespace == nil ||
		*ref.Namespace != "app" || ref.Name != "svc" || ref.Port == nil || *ref.Port != 80 || ref.SectionName != nil {
		t.Fatalf("parentRef = %+v", ref)
	}
	for _, c := range mine[0].Conditions {
		if c.ObservedGeneration != 3 || !c.LastTransitionTime.Time.Equal(t1) {
			t.Errorf("condition %s: generation %d time %v, want 3 and %v", c.Type, c.ObservedGeneration, c.LastTransitionTime, t1)
		}
	}

	t.Run("unchanged report writes nothing", func(t *testing.T) {
		clock.set(t2)
		w.Report(routeStatus(metav1.ConditionTrue, ""))
		flushOK(t, w)
		// A fresh writer has no memory: it reads the object and finds nothing to change.
		fresh := &StatusWriter{Gateway: gc, Logger: testLogger(t), now: clock.now}
		fresh.Report(routeStatus(metav1.ConditionTrue, ""))
		flushOK(t, fresh)
		if n := countActions(&gc.Fake, "update", "httproutes"); n != 1 {
			t.Fatalf("%d status updates, want still 1", n)
		}
	})
	t.Run("time kept when status unchanged", func(t *testing.T) {
		w.Report(routeStatus(metav1.ConditionTrue, "hostnames are ignored for Service parents"))
		flushOK(t, w)
		c := ours(getRoute(t, gc))[0].Conditions[0]
		if c.Message == "" || !c.LastTransitionTime.Time.Equal(t1) {
			t.Fatalf("accepted = %+v, want new message and time %v", c, t1)
		}
	})
	t.Run("time updated on flip", func(t *testing.T) {
		w.Report(routeStatus(metav1.ConditionFalse, "unsupported"))
		flushOK(t, w)
		conds := ours(getRoute(t, gc))[0].Conditions
		if conds[0].Status != metav1.ConditionFalse || !conds[0].LastTransitionTime.Time.Equal(t2) {
			t.Fatalf("accepted = %+v, want False at %v", conds[0], t2)
		}
		if !conds[1].LastTransitionTime.Time.Equal(t1) {
			t.Fatalf("resolvedRefs = %+v, want time kept %v", conds[1], t1)
		}
	})
}

func TestStatusHTTPRouteParents(t *testing.T) {
	section := gatewayv1.SectionName("http")
	gw, wp := gatewayv1.Group(gatewayv1.GroupName), gatewayv1.Kind("Gateway")
	hr := statusRoute()
	hr.Spec.ParentRefs = append(hr.Spec.ParentRefs,
		gatewayv1.ParentReference{Kind: ptrTo(gatewayv1.Kind("Service")), Group: ptrTo(gatewayv1.Group("")), Name: "web", SectionName: &section},
		gatewayv1.ParentReference{Name: "waypoint"})
	gc := newGatewayFake(t, hr)
	w := &StatusWriter{Gateway: gc, Logger: testLogger(t), now: (&testClock{t: t1}).now}
	want := routeStatus(metav1.ConditionTrue, "")
	cond := want[0].Conditions[:1]
	want = append(want,
		l7.ObjectStatus{Ref: want[0].Ref, Generation: 3, Parent: "Service/app/web/http", Conditions: cond},
		l7.ObjectStatus{Ref: want[0].Ref, Generation: 3, Parent: "Gateway/app/waypoint", Conditions: cond},
		l7.ObjectStatus{Ref: want[0].Ref, Generation: 3, Parent: "Service/app/gone", Conditions: cond}, // not in spec
	)
	w.Report(want)
	flushOK(t, w)
	mine := ours(getRoute(t, gc))
	got := map[string]gatewayv1.ParentReference{}
	for _, p := range mine {
		got[parentKey("app", p.ParentRef)] = p.ParentRef
	}
	if len(mine) != 3 || len(got) != 3 {
		t.Fatalf("our parents = %+v, want svc:80, web/http, waypoint", mine)
	}
	if r := got["Gateway/app/waypoint"]; *r.Group != gw || *r.Kind != wp {
		t.Errorf("gateway parentRef = %+v", r)
	}
	if r, ok := got["Service/app/web/http"]; !ok || *r.SectionName != section || r.Port != nil {
		t.Errorf("section parentRef = %+v", r)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestStatusIstioKinds(t *testing.T) {
	objs := []runtime.Object{
		&networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "vs", Generation: 2}},
		&networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "dr", Generation: 2}},
		&securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "ap", Generation: 2}},
	}
	ic := istiofake.NewSimpleClientset(objs...)
	ctx := context.Background()
	// Another controller's condition on the VirtualService must survive.
	vs, _ := ic.NetworkingV1().VirtualServices("app").Get(ctx, "vs", metav1.GetOptions{})
	vs.Status.Conditions = append(vs.Status.Conditions, istioForeignCondition())
	if _, err := ic.NetworkingV1().VirtualServices("app").UpdateStatus(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ic.ClearActions()
	clock := &testClock{t: t1}
	w := &StatusWriter{Istio: ic, Logger: testLogger(t), now: clock.now}
	report := func(status metav1.ConditionStatus, msg string) {
		var sts []l7.ObjectStatus
		for _, ref := range []l7.ObjectRef{{Kind: l7.KindVirtualService, Namespace: "app", Name: "vs"},
			{Kind: l7.KindDestinationRule, Namespace: "app", Name: "dr"},
			{Kind: l7.KindAuthorizationPolicy, Namespace: "app", Name: "ap"}} {
			sts = append(sts, l7.ObjectStatus{Ref: ref, Generation: 2, Conditions: []metav1.Condition{
				{Type: l7.ConditionAccepted, Status: status, Reason: "R", Message: msg, ObservedGeneration: 2}}})
		}
		w.Report(sts)
		flushOK(t, w)
	}
	report(metav1.ConditionFalse, "not honoured: x")
	tests := []struct {
		name     string
		resource string
		get      func() []*istioConditionView
	}{
		{"VirtualService", "virtualservices", func() []*istioConditionView {
			o, _ := ic.NetworkingV1().VirtualServices("app").Get(ctx, "vs", metav1.GetOptions{})
			return viewIstio(o.Status.Conditions)
		}},
		{"DestinationRule", "destinationrules", func() []*istioConditionView {
			o, _ := ic.NetworkingV1().DestinationRules("app").Get(ctx, "dr", metav1.GetOptions{})
			return viewIstio(o.Status.Conditions)
		}},
		{"AuthorizationPolicy", "authorizationpolicies", func() []*istioConditionView {
			o, _ := ic.SecurityV1().AuthorizationPolicies("app").Get(ctx, "ap", metav1.GetOptions{})
			return viewIstio(o.Status.Conditions)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conds := tc.get()
			if tc.name == "VirtualService" {
				if len(conds) != 2 || conds[0].Type != "Reconciled" {
					t.Fatalf("conditions = %+v, want foreign Reconciled kept first", conds)
				}
				conds = conds[1:]
			}
			if len(conds) != 1 || conds[0].Type != "Accepted" || conds[0].Status != "False" || conds[0].Reason != "R" ||
				conds[0].Message != "not honoured: x" || conds[0].Generation != 2 || !conds[0].Time.Equal(t1) {
				t.Fatalf("conditions = %+v", conds)
			}
			if n := countActions(&ic.Fake, "update", tc.resource); n != 1 {
				t.Fatalf("%d status updates, want 1", n)
			}
		})
	}
	t.Run("time kept when status unchanged", func(t *testing.T) {
		clock.set(t2)
		report(metav1.ConditionFalse, "not honoured: x") // unchanged: no writes
		report(metav1.ConditionFalse, "not honoured: y")
		for _, tc := range tests {
			conds := tc.get()
			last := conds[len(conds)-1]
			if last.Message != "not honoured: y" || !last.Time.Equal(t1) {
				t.Errorf("%s: accepted = %+v, want new message at %v", tc.name, last, t1)
			}
			if n := countActions(&ic.Fake, "update", tc.resource); n != 2 {
				t.Errorf("%s: %d status updates, want 2", tc.name, n)
			}
		}
	})
	t.Run("flip", func(t *testing.T) {
		report(metav1.ConditionTrue, "")
		for _, tc := range tests {
			conds := tc.get()
			last := conds[len(conds)-1]
			if last.Status != "True" || !last.Time.Equal(t2) {
				t.Errorf("%s: accepted = %+v, want True at %v", tc.name, last, t2)
			}
			if n := countActions(&ic.Fake, "update", tc.resource); n != 3 {
				t.Errorf("%s: %d status updates, want 3", tc.name, n)
			}
		}
	})
}

// istioConditionView is the part of an Istio condition the tests check.
type istioConditionView struct {
	Type, Status, Reason, Message string
	Generation                    int64
	Time                          time.Time
}

func viewIstio(conds []*istiometa.IstioCondition) []*istioConditionView {
	var out []*istioConditionView
	for _, c := range conds {
		out = append(out, &istioConditionView{Type: c.GetType(), Status: c.GetStatus(), Reason: c.GetReason(),
			Message: c.GetMessage(), Generation: c.GetObservedGeneration(), Time: c.GetLastTransitionTime().AsTime()})
	}
	return out
}

func istioForeignCondition() *istiometa.IstioCondition {
	return &istiometa.IstioCondition{Type: "Reconciled", Status: "True", Reason: "Other"}
}

func TestStatusConflictRetried(t *testing.T) {
	gc := newGatewayFake(t, statusRoute())
	conflicts := 1
	gc.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" || conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "httproutes"}, "r", nil)
	})
	w := &StatusWriter{Gateway: gc, Logger: testLogger(t), now: (&testClock{t: t1}).now}
	w.Report(routeStatus(metav1.ConditionTrue, ""))
	flushOK(t, w)
	if got := countActions(&gc.Fake, "get", "httproutes"); got != 2 {
		t.Errorf("%d gets, want 2 (re-read after the conflict)", got)
	}
	if len(ours(getRoute(t, gc))) != 1 {
		t.Fatal("status not written after the conflict")
	}
}

func TestStatusDeletedSkipped(t *testing.T) {
	ic := istiofake.NewSimpleClientset(
		&networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "dr", Generation: 1}})
	gc := newGatewayFake(t, statusRoute())
	// The route disappears between the read and the write.
	gc.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "httproutes"}, "r")
	})
	w := &StatusWriter{Gateway: gc, Istio: ic, Logger: testLogger(t)}
	accepted := []metav1.Condition{{Type: l7.ConditionAccepted, Status: metav1.ConditionTrue, Reason: l7.ReasonAccepted}}
	w.Report(append(routeStatus(metav1.ConditionTrue, ""),
		l7.ObjectStatus{Ref: l7.ObjectRef{Kind: l7.KindVirtualService, Namespace: "app", Name: "gone"}, Conditions: accepted},
		l7.ObjectStatus{Ref: l7.ObjectRef{Kind: l7.KindDestinationRule, Namespace: "app", Name: "dr"}, Conditions: accepted},
	))
	flushOK(t, w)
	if n := countActions(&ic.Fake, "update", "virtualservices"); n != 0 {
		t.Errorf("%d updates of a missing VirtualService", n)
	}
	dr, err := ic.NetworkingV1().DestinationRules("app").Get(context.Background(), "dr", metav1.GetOptions{})
	if err != nil || len(dr.Status.Conditions) != 1 {
		t.Fatalf("DestinationRule status not written after skipped objects: %v %+v", err, dr)
	}
}

func TestStatusRun(t *testing.T) {
	if err := (&StatusWriter{}).Run(context.Background()); err == nil {
		t.Fatal("Run without clients: no error")
	}
	gc := newGatewayFake(t, statusRoute())
	failures := 1
	var mu sync.Mutex
	gc.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures == 0 {
			return false, nil, nil
		}
		failures--
		return true, nil, apierrors.NewInternalError(context.DeadlineExceeded)
	})
	w := &StatusWriter{Gateway: gc, Logger: testLogger(t)}
	// Superseded before Run starts: only the latest report is written.
	w.Report(routeStatus(metav1.ConditionFalse, "first"))
	w.Report(routeStatus(metav1.ConditionTrue, "latest"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "status written after a failed attempt", func() bool {
		mine := ours(getRoute(t, gc))
		return len(mine) == 1 && mine[0].Conditions[0].Message == "latest"
	})
	w.Report(routeStatus(metav1.ConditionFalse, "later"))
	eventually(t, "later report written", func() bool {
		mine := ours(getRoute(t, gc))
		return len(mine) == 1 && mine[0].Conditions[0].Message == "later"
	})
}
