package waypoint

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	gatewaylisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig() Config {
	return Config{Image: "ambit/waypoint:dev", ClusterID: "c1", LogLevel: "debug"}
}

// newFakes returns fake clientsets; the Gateway API one serves discovery for
// gateway.networking.k8s.io/v1 as an API server with the CRDs installed does.
func newFakes() (*k8sfake.Clientset, *gwfake.Clientset) {
	// NewClientset's field-managed tracker has no mapping for CRD kinds (kubernetes
	// issue 126850) and fails every Gateway API call; the controller does not apply
	// Gateway API objects, so the plain tracker is enough.
	gc := gwfake.NewSimpleClientset() //nolint:staticcheck // see above

	gc.Resources = []*metav1.APIResourceList{{
		GroupVersion: gatewayv1.GroupVersion.String(),
		APIResources: []metav1.APIResource{
			{Name: "gatewayclasses", Kind: "GatewayClass"}, {Name: "gatewayclasses/status", Kind: "GatewayClass"},
			{Name: "gateways", Namespaced: true, Kind: "Gateway"}, {Name: "gateways/status", Namespaced: true, Kind: "Gateway"},
		},
	}}
	return k8sfake.NewClientset(), gc
}

// startController runs a controller until the test ends; the cleanup waits for Run
// to return and fails the test if it returned an error.
func startController(t *testing.T, kc *k8sfake.Clientset, gc *gwfake.Clientset, cfg Config) *Controller {
	t.Helper()
	c, err := New(kc, gc, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// eventually polls cond until it reports true or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error: %v)", what, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waypointGateway is a valid waypoint Gateway.
func waypointGateway(ns, name string) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Generation: 1},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: wire.WaypointGatewayClass,
			Listeners:        []gatewayv1.Listener{{Name: ListenerName, Port: wire.PortHBONE, Protocol: ProtocolHBONE}},
		},
	}
}

func ownedClass(controller string) *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: wire.WaypointGatewayClass},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: gatewayv1.GatewayController(controller)},
	}
}

// testRun is a run whose listers hold exactly the given objects, for calling the
// reconcilers directly (synchronously) against fake clientsets.
func testRun(t *testing.T, kc *k8sfake.Clientset, gc *gwfake.Clientset, cfg Config, class *gatewayv1.GatewayClass, gws ...*gatewayv1.Gateway) *run {
	t.Helper()
	c, err := New(kc, gc, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	classIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	gwIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	if class != nil {
		must(t, classIdx.Add(class))
	}
	for _, gw := range gws {
		must(t, gwIdx.Add(gw))
		if _, err := gc.GatewayV1().Gateways(gw.Namespace).Create(t.Context(), gw, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[key]())
	t.Cleanup(q.ShutDown)
	return &run{Controller: c, queue: q,
		classes: gatewaylisters.NewGatewayClassLister(classIdx), gateways: gatewaylisters.NewGatewayLister(gwIdx)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// condition returns the condition of type typ, or an error naming what is there.
func condition(conds []metav1.Condition, typ string) (metav1.Condition, error) {
	for _, c := range conds {
		if c.Type == typ {
			return c, nil
		}
	}
	return metav1.Condition{}, errors.New("no " + typ + " condition")
}
