package kube

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// crdKind is one custom resource kind the source reads when its CRD is installed.
type crdKind struct {
	gv       schema.GroupVersion
	resource string // plural name, e.g. "authorizationpolicies"
	// required kinds are warned about while missing (leaving them out changes what
	// ztunnel enforces); optional ones (the waypoint kinds) are only noted.
	required bool
	obj      runtime.Object // prototype, for logs
	// informer builds the kind's cluster-wide informer.
	informer func() cache.SharedIndexInformer
	// addTo puts the cached objects into the snapshot.
	addTo func(items []any, s *kubefile.Snapshot)
}

func (k crdKind) name() string { return k.resource + "." + k.gv.Group }

// crdWatch runs the informers of the kinds whose CRDs API discovery reports, and looks
// again for the missing ones on recheck. Its methods run on Source.Run's goroutine.
type crdWatch struct {
	client  kubernetes.Interface
	kinds   []crdKind
	handler cache.ResourceEventHandler
	kick    func()
	log     *slog.Logger

	found     map[string]bool // by kind name
	informers map[string]cache.SharedIndexInformer
	wg        sync.WaitGroup // informer goroutines
}

// discover asks API discovery which kinds are served.
func (w *crdWatch) discover(ctx context.Context) (map[string]bool, error) {
	found := map[string]bool{}
	byGV := map[schema.GroupVersion]map[string]bool{}
	for _, k := range w.kinds {
		served, ok := byGV[k.gv]
		if !ok {
			list, err := w.client.Discovery().ServerResourcesForGroupVersionWithContext(ctx, k.gv.String())
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("discover %s: %w", k.gv, err)
			default:
				served = map[string]bool{}
				for _, r := range list.APIResources {
					served[r.Name] = true
				}
			}
			byGV[k.gv] = served
		}
		if served[k.resource] {
			found[k.name()] = true
		}
	}
	return found, nil
}

// discoverAtStart retries discovery with backoff until it answers: the first snapshot
// must not leave out policies merely because discovery failed (that would fail open).
// It returns ctx's error when ctx ends first.
func (w *crdWatch) discoverAtStart(ctx context.Context) error {
	if len(w.kinds) == 0 {
		return nil
	}
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		found, err := w.discover(ctx)
		if err == nil {
			w.found = found
			w.noteMissing()
			return nil
		}
		w.log.Warn("CRD discovery failed; retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *crdWatch) noteMissing() {
	for _, k := range w.kinds {
		switch {
		case w.found[k.name()]:
		case k.required:
			w.log.Warn("CRD not installed; running without it and checking again periodically", "resource", k.name())
		default:
			w.log.Info("CRD not installed; checking again periodically", "resource", k.name())
		}
	}
}

func (w *crdWatch) allFound() bool {
	for _, k := range w.kinds {
		if !w.found[k.name()] {
			return false
		}
	}
	return true
}

// recheck looks for CRDs still missing and starts informers for those that appeared;
// a waiter goroutine (tracked by wg) kicks Source once their caches have synced.
func (w *crdWatch) recheck(ctx context.Context, wg *sync.WaitGroup) {
	if w.allFound() {
		return
	}
	found, err := w.discover(ctx)
	if err != nil {
		w.log.Debug("CRD discovery failed", "err", err)
		return
	}
	for name := range found {
		if !w.found[name] {
			w.log.Info("CRD installed; watching it", "resource", name)
			w.found[name] = true
		}
	}
	if err := w.start(ctx, wg); err != nil {
		w.log.Error("watch custom resources", "err", err)
	}
}

// start creates and runs informers for found kinds not yet watched. With wg nil the
// caller waits for their sync (waitInitial); otherwise a goroutine does and kicks.
func (w *crdWatch) start(ctx context.Context, wg *sync.WaitGroup) error {
	if w.informers == nil {
		w.informers = map[string]cache.SharedIndexInformer{}
	}
	var fresh []cache.InformerSynced
	for _, k := range w.kinds {
		if !w.found[k.name()] || w.informers[k.name()] != nil {
			continue
		}
		inf := k.informer()
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return fmt.Errorf("informer %s: %w", k.name(), err)
		}
		if _, err := inf.AddEventHandler(w.handler); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
		w.informers[k.name()] = inf
		fresh = append(fresh, inf.HasSynced)
		w.wg.Go(func() { inf.RunWithContext(ctx) })
	}
	if len(fresh) > 0 && wg != nil {
		wg.Go(func() {
			if cache.WaitForCacheSync(ctx.Done(), fresh...) {
				w.kick()
			}
		})
	}
	return nil
}

// waitInitial waits for the informers start(ctx, nil) started; its shape matches
// SharedInformerFactory.WaitForCacheSync.
func (w *crdWatch) waitInitial(stop <-chan struct{}) map[reflect.Type]bool {
	out := map[reflect.Type]bool{}
	for _, k := range w.kinds {
		if inf := w.informers[k.name()]; inf != nil {
			out[reflect.TypeOf(k.obj)] = cache.WaitForCacheSync(stop, inf.HasSynced)
		}
	}
	return out
}

// addTo fills the snapshot from the informers whose caches have synced.
func (w *crdWatch) addTo(snap *kubefile.Snapshot) {
	for _, k := range w.kinds {
		if inf := w.informers[k.name()]; inf != nil && inf.HasSynced() {
			k.addTo(inf.GetIndexer().List(), snap)
		}
	}
}

// shutdown waits for the informers; the context they run with must have ended.
func (w *crdWatch) shutdown() { w.wg.Wait() }

// listInto appends the items of type T to list.
func listInto[T any](items []any, list *[]*T) {
	for _, it := range items {
		if o, ok := it.(*T); ok {
			*list = append(*list, o)
		}
	}
}

// newInformer is the informer of one kind (obj is its prototype), indexed by namespace.
// lister tells the reflector whether the client (a test fake) can serve streaming lists.
func newInformer(lister any, obj runtime.Object,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, lister),
		obj, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
