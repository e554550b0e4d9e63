package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// Defaults of Source's optional fields.
const (
	// DefaultDebounce is how long Source gathers changes before building a snapshot.
	// Building one is incremental (model.Builder) and costs a few tens of milliseconds at
	// 10,000 pods, so a short window keeps event-to-push low (F-CP-4: p99 ≤ 100 ms)
	// while still batching a burst of changes into one push.
	DefaultDebounce = 20 * time.Millisecond
	// DefaultCRDCheckInterval is how often Source asks API discovery whether the Istio
	// security CRDs it lacks have been installed.
	DefaultCRDCheckInterval = 30 * time.Second
)

// Source is the Kubernetes config source (F-CP-1): shared informers on Namespaces,
// Pods, Services, EndpointSlices, Nodes, ServiceAccounts and, when their CRDs are
// installed, security.istio.io/v1 AuthorizationPolicy and PeerAuthentication. It hands
// out the same kubefile.Snapshot the file source builds from YAML (F-CP-3). Set the
// exported fields, then call Run once.
type Source struct {
	// Client reads the core and discovery.k8s.io objects and API discovery. Required.
	Client kubernetes.Interface
	// Istio reads AuthorizationPolicy and PeerAuthentication (and the waypoints'
	// VirtualService and DestinationRule); nil leaves them out.
	Istio istioclient.Interface
	// Gateway reads Gateway API Gateways and HTTPRoutes (waypoints); nil leaves them out.
	Gateway gatewayclient.Interface
	// OnChange receives every snapshot: the first once all caches have synced, then
	// one per window of changes. Calls come from Run's goroutine, one at a time.
	// Snapshots are sorted; their objects are the informers' and must not be modified.
	OnChange func(*kubefile.Snapshot)
	// Debounce is the window during which changes are gathered into one snapshot,
	// counted from the first change after the previous snapshot (so a steady stream of
	// changes still yields one snapshot per window); 0 means DefaultDebounce.
	Debounce time.Duration
	// CRDCheckInterval is how often missing Istio CRDs are looked for again; 0 means
	// DefaultCRDCheckInterval.
	CRDCheckInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	pods atomic.Pointer[corelisters.PodLister]
}

// coreListers read the informers of the Kubernetes built-in kinds: pods in podOrder's
// order, the other kinds through lists kept until their next event.
type coreListers struct {
	namespaces      *kindList[corev1.Namespace]
	services        *kindList[corev1.Service]
	serviceAccounts *kindList[corev1.ServiceAccount]
	nodes           *kindList[corev1.Node]
	endpointSlices  *kindList[discoveryv1.EndpointSlice]
	pods            corelisters.PodLister
	podOrder        *podOrder
}

// Run starts the informers, waits for their caches, delivers the first snapshot and
// then one per window of changes until ctx ends, when it stops the informers and
// returns nil. Istio CRDs missing from the cluster are logged and looked for again
// every CRDCheckInterval; until then snapshots have no Istio policies. If discovery
// fails at start it is retried before the first snapshot (leaving existing policies
// out would fail open). Run returns an error only when it cannot start; when ctx ends
// first, even while waiting for caches or discovery, it returns nil.
func (s *Source) Run(ctx context.Context) error {
	if s.Client == nil || s.OnChange == nil {
		return errors.New("kube source: Client and OnChange are required")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	changed := make(chan struct{}, 1)
	kick := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := changeHandler(kick)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	factory := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithTransform(dropManagedFields))
	pol := &crdWatch{client: s.Client, kinds: crdKinds(s.Istio, s.Gateway), handler: handler, kick: kick, log: log}
	defer func() {
		cancel() // stops the informers and the sync waiters, then wait for them
		wg.Wait()
		factory.Shutdown()
		pol.shutdown()
	}()

	core, err := newCoreListers(factory, handler)
	if err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	if err := pol.discoverAtStart(ctx); err != nil {
		return nil // ctx ended
	}
	factory.Start(ctx.Done())
	if err := pol.start(ctx, nil); err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	if !waitSynced(ctx, log, factory.WaitForCacheSync, pol.waitInitial, core.podOrder.waitSynced) {
		return nil
	}
	s.pods.Store(&core.pods)
	log.Info("kubernetes caches synced")
	return s.loop(ctx, log, core, pol, changed, &wg)
}

// loop delivers snapshots until ctx ends.
func (s *Source) loop(ctx context.Context, log *slog.Logger, core *coreListers, pol *crdWatch, changed <-chan struct{}, wg *sync.WaitGroup) error {
	debounce := s.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	crdEvery := s.CRDCheckInterval
	if crdEvery <= 0 {
		crdEvery = DefaultCRDCheckInterval
	}
	s.deliver(log, core, pol)
	window := time.NewTimer(time.Hour)
	window.Stop()
	defer window.Stop()
	crdTick := time.NewTicker(crdEvery)
	defer crdTick.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			if !pending {
				pending = true
				window.Reset(debounce)
			}
		case <-window.C:
			pending = false
			s.deliver(log, core, pol)
		case <-crdTick.C:
			pol.recheck(ctx, wg)
		}
	}
}

func (s *Source) deliver(log *slog.Logger, core *coreListers, pol *crdWatch) {
	snap, err := core.snapshot()
	if err != nil {
		// Listers read memory; an error here is a programming error, never partial data.
		log.Error("build snapshot from informers; keeping the previous one", "err", err)
		return
	}
	pol.addTo(snap)
	snap.SortExceptPods() // pods come in order (podOrder)
	s.OnChange(snap)
}

// Pod returns the named pod from the informer cache; ok is false before the caches have
// synced or when there is no such pod. The pod must not be modified.
func (s *Source) Pod(namespace, name string) (pod *corev1.Pod, ok bool) {
	l := s.pods.Load()
	if l == nil {
		return nil, false
	}
	p, err := (*l).Pods(namespace).Get(name)
	if err != nil {
		return nil, false
	}
	return p, true
}

func newCoreListers(f informers.SharedInformerFactory, h cache.ResourceEventHandler) (*coreListers, error) {
	core := f.Core().V1()
	disc := f.Discovery().V1()
	l := &coreListers{
		namespaces:      newKindList(core.Namespaces().Lister().List, func(o *corev1.Namespace) *metav1.ObjectMeta { return &o.ObjectMeta }),
		services:        newKindList(core.Services().Lister().List, func(o *corev1.Service) *metav1.ObjectMeta { return &o.ObjectMeta }),
		serviceAccounts: newKindList(core.ServiceAccounts().Lister().List, func(o *corev1.ServiceAccount) *metav1.ObjectMeta { return &o.ObjectMeta }),
		nodes:           newKindList(core.Nodes().Lister().List, func(o *corev1.Node) *metav1.ObjectMeta { return &o.ObjectMeta }),
		endpointSlices:  newKindList(disc.EndpointSlices().Lister().List, func(o *discoveryv1.EndpointSlice) *metav1.ObjectMeta { return &o.ObjectMeta }),
		pods:            core.Pods().Lister(),
		podOrder:        &podOrder{},
	}
	reg, err := core.Pods().Informer().AddEventHandler(l.podOrder.handler())
	if err != nil {
		return nil, fmt.Errorf("add event handler: %w", err)
	}
	l.podOrder.synced = reg.HasSynced
	for _, e := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{core.Namespaces().Informer(), l.namespaces.handler(h)},
		{core.Pods().Informer(), h},
		{core.Services().Informer(), l.services.handler(h)},
		{core.ServiceAccounts().Informer(), l.serviceAccounts.handler(h)},
		{core.Nodes().Informer(), l.nodes.handler(h)},
		{disc.EndpointSlices().Informer(), l.endpointSlices.handler(h)},
	} {
		if _, err := e.inf.AddEventHandler(e.h); err != nil {
			return nil, fmt.Errorf("add event handler: %w", err)
		}
	}
	return l, nil
}

// snapshot lists the cached objects, sorted (pods by podOrder, the other kinds by
// their kept lists).
func (l *coreListers) snapshot() (*kubefile.Snapshot, error) {
	snap := &kubefile.Snapshot{}
	var errs [5]error
	snap.Namespaces, errs[0] = l.namespaces.get()
	snap.Pods = l.podOrder.list(func(ns, name string) (*corev1.Pod, error) { return l.pods.Pods(ns).Get(name) })
	snap.Services, errs[1] = l.services.get()
	snap.ServiceAccounts, errs[2] = l.serviceAccounts.get()
	snap.Nodes, errs[3] = l.nodes.get()
	snap.EndpointSlices, errs[4] = l.endpointSlices.get()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("list cached objects: %w", err)
	}
	return snap, nil
}

// changeHandler calls kick on every add, delete and real update (an update that leaves
// the resourceVersion unchanged is a resync and changes nothing).
func changeHandler(kick func()) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { kick() },
		UpdateFunc: func(oldObj, newObj any) {
			o, err1 := meta.Accessor(oldObj)
			n, err2 := meta.Accessor(newObj)
			if err1 == nil && err2 == nil && o.GetResourceVersion() == n.GetResourceVersion() && o.GetResourceVersion() != "" {
				return
			}
			kick()
		},
		DeleteFunc: func(any) { kick() },
	}
}

// dropManagedFields is the informers' transform: server-side apply bookkeeping is large
// and never read here.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// waitSynced waits for every wait function's caches; false when ctx ended first.
// A cache that has not synced after a while is logged (typically missing RBAC).
func waitSynced(ctx context.Context, log *slog.Logger, waits ...func(<-chan struct{}) map[reflect.Type]bool) bool {
	warn := time.AfterFunc(30*time.Second, func() {
		log.Warn("kubernetes caches not synced after 30s; check the API server and RBAC")
	})
	defer warn.Stop()
	for _, w := range waits {
		for typ, ok := range w(ctx.Done()) {
			if !ok {
				if ctx.Err() == nil {
					log.Error("informer cache failed to sync", "type", typ.String())
				}
				return false
			}
		}
	}
	return true
}
