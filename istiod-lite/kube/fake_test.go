package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// fakeCluster is a fake clientset whose API discovery answers for security.istio.io/v1
// from a mutex-guarded switch, so tests can "install" the Istio CRDs while a Source runs.
type fakeCluster struct {
	*fake.Clientset
	disc *switchDiscovery
}

func (f *fakeCluster) Discovery() discovery.DiscoveryInterfaces { return f.disc }

type switchDiscovery struct {
	discovery.DiscoveryInterfaces
	mu        sync.Mutex
	resources map[string][]string // group/version -> plural names served
}

func (d *switchDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	return d.ServerResourcesForGroupVersionWithContext(context.Background(), gv)
}

func (d *switchDiscovery) ServerResourcesForGroupVersionWithContext(ctx context.Context, gv string) (*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := &metav1.APIResourceList{GroupVersion: gv}
	for _, r := range d.resources[gv] {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: r, Namespaced: true})
	}
	if len(list.APIResources) == 0 {
		// The fake's own answer for a group it does not know: 404 NotFound.
		return d.DiscoveryInterfaces.ServerResourcesForGroupVersionWithContext(ctx, gv)
	}
	return list, nil
}

// install makes discovery report the given security.istio.io/v1 resources.
func (d *switchDiscovery) install(resources ...string) {
	d.installGV("security.istio.io/v1", resources...)
}

func (d *switchDiscovery) installGV(gv string, resources ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resources == nil {
		d.resources = map[string][]string{}
	}
	d.resources[gv] = resources
}

var _ kubernetes.Interface = (*fakeCluster)(nil)

// newFakes returns fake clientsets holding the snapshot's objects; withCRDs decides
// whether discovery reports the Istio CRDs and Gateway API's.
func newFakes(snap *kubefile.Snapshot, withCRDs bool) (*fakeCluster, *istioFake) {
	fc, ic, _ := newAllFakes(snap, withCRDs)
	return fc, ic
}

// newAllFakes is newFakes with a Gateway API fake clientset too.
func newAllFakes(snap *kubefile.Snapshot, withCRDs bool) (*fakeCluster, *istioFake, *gatewayfake.Clientset) {
	var core, istio []runtime.Object
	core = appendCopies(core, snap.Namespaces)
	core = appendCopies(core, snap.Nodes)
	core = appendCopies(core, snap.ServiceAccounts)
	core = appendCopies(core, snap.Services)
	core = appendCopies(core, snap.Pods)
	core = appendCopies(core, snap.EndpointSlices)
	istio = appendCopies(istio, snap.AuthorizationPolicies)
	istio = appendCopies(istio, snap.PeerAuthentications)
	istio = appendCopies(istio, snap.VirtualServices)
	istio = appendCopies(istio, snap.DestinationRules)
	kc := fake.NewClientset(core...)
	fc := &fakeCluster{Clientset: kc, disc: &switchDiscovery{DiscoveryInterfaces: kc.Discovery()}}
	if withCRDs {
		fc.disc.install(resourceAuthorizationPolicies, resourcePeerAuthentications)
		fc.disc.installGV("networking.istio.io/v1", resourceVirtualServices, resourceDestinationRules)
		fc.disc.installGV("gateway.networking.k8s.io/v1", resourceGateways, resourceHTTPRoutes)
	}
	// Gateway API objects are created through the typed client: the fake's tracker would
	// file initial objects under v1beta1 (whose types alias v1's) and v1 lists miss them.
	gc := gatewayfake.NewSimpleClientset()
	for _, g := range snap.Gateways {
		if _, err := gc.GatewayV1().Gateways(g.Namespace).Create(context.Background(), g.DeepCopy(), metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	for _, r := range snap.HTTPRoutes {
		if _, err := gc.GatewayV1().HTTPRoutes(r.Namespace).Create(context.Background(), r.DeepCopy(), metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	return fc, &istioFake{istiofake.NewSimpleClientset(istio...)}, gc
}

// istioFake is istio.io/client-go's fake clientset, which (unlike client-go's own)
// does not say that it cannot serve streaming lists.
type istioFake struct{ *istiofake.Clientset }

func (*istioFake) IsWatchListSemanticsUnSupported() bool { return true }

// snapshots runs src in the background until the test ends and returns a function
// that waits for the latest delivered snapshot to satisfy cond.
func runSource(t *testing.T, src *Source) func(what string, cond func(*kubefile.Snapshot) bool) *kubefile.Snapshot {
	t.Helper()
	var (
		mu     sync.Mutex
		latest *kubefile.Snapshot
		count  int
	)
	src.OnChange = func(s *kubefile.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		latest, count = s, count+1
	}
	src.Logger = testLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return func(what string, cond func(*kubefile.Snapshot) bool) *kubefile.Snapshot {
		t.Helper()
		var snap *kubefile.Snapshot
		eventually(t, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			snap = latest
			return snap != nil && cond(snap)
		})
		return snap
	}
}

// eventually polls cond every 10ms for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appendCopies appends deep copies of objs to out (fake clientsets own what they hold).
func appendCopies[T runtime.Object](out []runtime.Object, objs []T) []runtime.Object {
	for _, o := range objs {
		out = append(out, o.DeepCopyObject())
	}
	return out
}
