package waypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gatewaylisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// FieldManager is the server-side apply field manager of everything the controller
// writes (as the objects' managedFields show).
const FieldManager = "istiod-lite"

// Controller is the waypoint deployment controller (F-WP-1). Build it with New, then
// call Run once; SetConfigError may be called at any time, from any goroutine.
type Controller struct {
	kube    kubernetes.Interface
	gateway gatewayclient.Interface
	cfg     Config
	log     *slog.Logger

	mu         sync.Mutex
	configErrs map[types.NamespacedName]error
	queue      workqueue.TypedRateLimitingInterface[key] // while Run runs
}

// key is one unit of work: the GatewayClass, or one Gateway.
type key struct {
	class   bool
	gateway types.NamespacedName
}

var classKey = key{class: true}

// New builds a Controller from the Kubernetes and Gateway API clients, cfg (defaults
// filled in; an error wrapping ErrInvalidConfig when unusable) and log (nil:
// slog.Default()). It starts nothing.
func New(kube kubernetes.Interface, gateway gatewayclient.Interface, cfg Config, log *slog.Logger) (*Controller, error) {
	if kube == nil || gateway == nil {
		return nil, fmt.Errorf("%w: Kubernetes and Gateway API clients are required", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Controller{kube: kube, gateway: gateway, cfg: cfg, log: log.With("controller", "waypoint"),
		configErrs: map[types.NamespacedName]error{}}, nil
}

// SetConfigError records that istiod-lite could not generate (or validate) the xDS
// configuration of the waypoint of Gateway gw: its Programmed condition turns False
// with reason Invalid and err's text. A nil err clears it; istiod-lite should clear
// it when the waypoint goes away (entries are kept until then, so an error reported
// before the Gateway reaches this controller's cache is not lost). The Gateway's
// status is updated by Run (at once when Run is running).
func (c *Controller) SetConfigError(gw types.NamespacedName, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.configErrs[gw]
	if err == nil {
		delete(c.configErrs, gw)
	} else {
		c.configErrs[gw] = err
	}
	changed := had != (err != nil) || (had && err != nil && old.Error() != err.Error())
	if changed && c.queue != nil {
		c.queue.Add(key{gateway: gw})
	}
}

func (c *Controller) configError(gw types.NamespacedName) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.configErrs[gw]
}

// run is the state of one Run: informers' listers and the queue.
type run struct {
	*Controller
	queue         workqueue.TypedRateLimitingInterface[key]
	classes       gatewaylisters.GatewayClassLister
	gateways      gatewaylisters.GatewayLister
	owned         bool // the class was ours at the last class reconcile
	warnedForeign bool
}

// Run waits for the Gateway API CRDs (checking every Config.CRDCheckInterval), starts
// informers on GatewayClasses, Gateways and the objects it manages (selected by
// LabelManaged), and reconciles until ctx ends, then returns nil. Failed
// reconciles are retried with rate-limited backoff. It returns an error only when it
// cannot start.
func (c *Controller) Run(ctx context.Context) error {
	if !c.waitForCRDs(ctx) {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[key](),
		workqueue.TypedRateLimitingQueueConfig[key]{Name: "waypoint"})
	gwFactory := gatewayinformers.NewSharedInformerFactoryWithOptions(c.gateway, 0,
		gatewayinformers.WithTransform(dropManagedFields))
	kubeFactory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0,
		informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{LabelManaged: ManagedValue}).String()
		}))
	defer func() {
		cancel()
		queue.ShutDown()
		gwFactory.Shutdown()
		kubeFactory.Shutdown()
		c.mu.Lock()
		c.queue = nil
		c.mu.Unlock()
	}()
	r := &run{Controller: c, queue: queue}
	if err := r.watch(gwFactory, kubeFactory); err != nil {
		return fmt.Errorf("waypoint controller: %w", err)
	}
	gwFactory.Start(ctx.Done())
	kubeFactory.Start(ctx.Done())
	for _, synced := range []map[reflect.Type]bool{gwFactory.WaitForCacheSync(ctx.Done()), kubeFactory.WaitForCacheSync(ctx.Done())} {
		for typ, ok := range synced {
			if ok {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("waypoint controller: %v cache did not sync", typ)
		}
	}
	c.mu.Lock()
	c.queue = queue
	c.mu.Unlock()
	c.log.Info("waypoint controller caches synced")
	queue.Add(classKey)
	stop := context.AfterFunc(ctx, queue.ShutDown)
	defer stop()
	for r.processNext(ctx) {
	}
	return nil
}

// processNext handles one key; false once the queue is shut down.
func (r *run) processNext(ctx context.Context) bool {
	k, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(k)
	var err error
	if k.class {
		err = r.reconcileClass(ctx)
	} else {
		err = r.reconcileGateway(ctx, k.gateway)
	}
	switch {
	case err == nil:
		r.queue.Forget(k)
	case ctx.Err() != nil:
	default:
		what := "gateway " + k.gateway.String()
		if k.class {
			what = "gatewayclass " + wire.WaypointGatewayClass
		}
		r.log.Warn("reconcile failed; retrying", "object", what, "err", err)
		r.queue.AddRateLimited(k)
	}
	return true
}

// waitForCRDs returns true once API discovery lists Gateways and GatewayClasses in
// gateway.networking.k8s.io/v1, false if ctx ends first.
func (c *Controller) waitForCRDs(ctx context.Context) bool {
	warned := false
	for {
		err := c.gatewayAPIServed()
		if err == nil {
			return true
		}
		if !warned {
			c.log.Warn("Gateway API CRDs not served; waypoints wait for them", "err", err, "recheck", c.cfg.CRDCheckInterval)
			warned = true
		}
		t := time.NewTimer(c.cfg.CRDCheckInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// errNoGatewayAPI: discovery answered, without the kinds the controller needs.
var errNoGatewayAPI = errors.New("gateway.networking.k8s.io/v1 lacks gateways or gatewayclasses")

func (c *Controller) gatewayAPIServed() error {
	list, err := c.gateway.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	if err != nil {
		return fmt.Errorf("discover gateway api: %w", err)
	}
	found := map[string]bool{}
	for _, res := range list.APIResources {
		found[res.Name] = true
	}
	if !found["gateways"] || !found["gateways/status"] || !found["gatewayclasses"] {
		return errNoGatewayAPI
	}
	return nil
}

// dropManagedFields keeps managedFields out of the caches (they are large and unused).
func dropManagedFields(obj any) (any, error) {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		a.GetObjectMeta().SetManagedFields(nil)
	}
	return obj, nil
}

// enqueueAllGateways queues every Gateway of the istio-waypoint class.
func (r *run) enqueueAllGateways() {
	gws, err := r.gateways.List(labels.Everything())
	if err != nil {
		return // listers read memory: cannot fail
	}
	for _, gw := range gws {
		if string(gw.Spec.GatewayClassName) == wire.WaypointGatewayClass {
			r.queue.Add(key{gateway: types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}})
		}
	}
}
