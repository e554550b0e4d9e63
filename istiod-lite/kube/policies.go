package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	securitylisters "istio.io/client-go/pkg/listers/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// Plural resource names of the Istio security CRDs Source watches.
const (
	resourceAuthorizationPolicies = "authorizationpolicies"
	resourcePeerAuthentications   = "peerauthentications"
)

// policyWatch runs the informers of the Istio security kinds whose CRDs are installed.
// Its methods other than the sync waiters' kick run on Source.Run's goroutine.
type policyWatch struct {
	client  kubernetes.Interface
	istio   istioclient.Interface // nil: policies are off
	handler cache.ResourceEventHandler
	kick    func()
	log     *slog.Logger

	found   map[string]bool // CRDs seen in discovery
	started map[string]cache.SharedIndexInformer
	factory istioinformers.SharedInformerFactory
}

// discover asks API discovery which of the two CRDs serve security.istio.io/v1.
func (p *policyWatch) discover(ctx context.Context) (map[string]bool, error) {
	list, err := p.client.Discovery().ServerResourcesForGroupVersionWithContext(ctx, securityv1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", securityv1.SchemeGroupVersion, err)
	}
	found := map[string]bool{}
	for _, r := range list.APIResources {
		if r.Name == resourceAuthorizationPolicies || r.Name == resourcePeerAuthentications {
			found[r.Name] = true
		}
	}
	return found, nil
}

// discoverAtStart retries discovery with backoff until it answers: the first snapshot
// must not leave out policies merely because discovery failed (that would fail open).
// It returns ctx's error when ctx ends first.
func (p *policyWatch) discoverAtStart(ctx context.Context) error {
	if p.istio == nil {
		return nil
	}
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		found, err := p.discover(ctx)
		if err == nil {
			p.found = found
			p.warnMissing()
			return nil
		}
		p.log.Warn("istio CRD discovery failed; retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (p *policyWatch) warnMissing() {
	for _, r := range []string{resourceAuthorizationPolicies, resourcePeerAuthentications} {
		if !p.found[r] {
			p.log.Warn("istio CRD not installed; running without it and checking again periodically",
				"resource", r+"."+securityv1.SchemeGroupVersion.Group)
		}
	}
}

// recheck looks for CRDs still missing and starts informers for those that appeared;
// a waiter goroutine (tracked by wg) kicks Source once their caches have synced.
func (p *policyWatch) recheck(ctx context.Context, wg *sync.WaitGroup) {
	if p.istio == nil || (p.found[resourceAuthorizationPolicies] && p.found[resourcePeerAuthentications]) {
		return
	}
	found, err := p.discover(ctx)
	if err != nil {
		p.log.Debug("istio CRD discovery failed", "err", err)
		return
	}
	for r := range found {
		if !p.found[r] {
			p.log.Info("istio CRD installed; watching it", "resource", r+"."+securityv1.SchemeGroupVersion.Group)
			p.found[r] = true
		}
	}
	if err := p.start(ctx, wg); err != nil {
		p.log.Error("watch istio policies", "err", err)
	}
}

// start creates and starts informers for found CRDs not yet watched. With wg nil the
// caller waits for their sync (waitInitial); otherwise a goroutine does and kicks.
func (p *policyWatch) start(ctx context.Context, wg *sync.WaitGroup) error {
	if p.istio == nil {
		return nil
	}
	if p.factory == nil {
		p.factory = istioinformers.NewSharedInformerFactoryWithOptions(p.istio, 0, istioinformers.WithTransform(dropManagedFields))
		p.started = map[string]cache.SharedIndexInformer{}
	}
	var fresh []cache.InformerSynced
	for r := range p.found {
		if p.started[r] != nil {
			continue
		}
		var inf cache.SharedIndexInformer
		switch r {
		case resourceAuthorizationPolicies:
			inf = p.factory.InformerFor(&securityv1.AuthorizationPolicy{}, newAuthorizationPolicyInformer)
		case resourcePeerAuthentications:
			inf = p.factory.InformerFor(&securityv1.PeerAuthentication{}, newPeerAuthenticationInformer)
		}
		if _, err := inf.AddEventHandler(p.handler); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
		p.started[r] = inf
		fresh = append(fresh, inf.HasSynced)
	}
	if len(fresh) == 0 {
		return nil
	}
	p.factory.Start(ctx.Done())
	if wg != nil {
		wg.Go(func() {
			if cache.WaitForCacheSync(ctx.Done(), fresh...) {
				p.kick()
			}
		})
	}
	return nil
}

// waitInitial waits for the informers start(ctx, nil) started; its shape matches
// SharedInformerFactory.WaitForCacheSync.
func (p *policyWatch) waitInitial(stop <-chan struct{}) map[reflect.Type]bool {
	if p.factory == nil {
		return nil
	}
	return p.factory.WaitForCacheSync(stop)
}

// addTo fills the snapshot's policies from the informers whose caches have synced.
func (p *policyWatch) addTo(snap *kubefile.Snapshot) error {
	if p.factory == nil {
		return nil
	}
	var errs []error
	if inf := p.started[resourceAuthorizationPolicies]; inf != nil && inf.HasSynced() {
		var err error
		snap.AuthorizationPolicies, err = securitylisters.NewAuthorizationPolicyLister(inf.GetIndexer()).List(labels.Everything())
		errs = append(errs, err)
	}
	if inf := p.started[resourcePeerAuthentications]; inf != nil && inf.HasSynced() {
		var err error
		snap.PeerAuthentications, err = securitylisters.NewPeerAuthenticationLister(inf.GetIndexer()).List(labels.Everything())
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("list cached policies: %w", err)
	}
	return nil
}

// newAuthorizationPolicyInformer and newPeerAuthenticationInformer build cluster-wide
// informers like istio.io/client-go's generated ones, but with context-aware list and
// watch calls, and telling the reflector when the client (a test fake) cannot serve
// streaming lists (cache.ToListWatcherWithWatchListSemantics).
func newAuthorizationPolicyInformer(c istioclient.Interface, resync time.Duration) cache.SharedIndexInformer {
	api := c.SecurityV1().AuthorizationPolicies(metav1.NamespaceAll)
	return newPolicyInformer(c, resync, &securityv1.AuthorizationPolicy{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }, api.Watch)
}

func newPeerAuthenticationInformer(c istioclient.Interface, resync time.Duration) cache.SharedIndexInformer {
	api := c.SecurityV1().PeerAuthentications(metav1.NamespaceAll)
	return newPolicyInformer(c, resync, &securityv1.PeerAuthentication{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }, api.Watch)
}

// newPolicyInformer is the informer of one policy kind (obj is its prototype), indexed
// by namespace.
func newPolicyInformer(c istioclient.Interface, resync time.Duration, obj runtime.Object,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c),
		obj, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

func (p *policyWatch) shutdown() {
	if p.factory != nil {
		p.factory.Shutdown()
	}
}
