package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// The root certificate ConfigMap, as istiod publishes it in every namespace for
// workloads and proxies to trust the mesh CA.
const (
	// RootCertConfigMap is the ConfigMap's name.
	RootCertConfigMap = "istio-ca-root-cert"
	// RootCertKey is its data key holding the PEM roots.
	RootCertKey = "root-cert.pem"
	// rootCertLabelKey=rootCertLabelValue marks it as Istio configuration, as istiod
	// labels it.
	rootCertLabelKey, rootCertLabelValue = "istio.io/config", "true"
)

// skippedNamespaces get no root ConfigMap, as istiod (which serves kube-system, where
// ztunnel may run, but not these).
var skippedNamespaces = map[string]bool{"kube-public": true, "kube-node-lease": true, "local-path-storage": true}

// RootCertPublisher keeps ConfigMap RootCertConfigMap with key RootCertKey = RootPEM,
// labelled istio.io/config=true, in every namespace: it creates it in new namespaces
// and puts it back when it is changed or deleted (as istiod's namespace controller).
// Other keys and labels on the ConfigMap are left alone. Namespaces being deleted and
// writes the API server forbids are skipped; other failures are retried with backoff.
type RootCertPublisher struct {
	// Client reads namespaces and writes the ConfigMaps. Required.
	Client kubernetes.Interface
	// RootPEM is the mesh root bundle (ca.Authority.RootPEM).
	RootPEM []byte
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Run publishes until ctx ends, then returns nil. It returns an error only when it
// cannot start.
func (p *RootCertPublisher) Run(ctx context.Context) error {
	if p.Client == nil || len(p.RootPEM) == 0 {
		return errors.New("root cert publisher: Client and RootPEM are required")
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "root-cert-publisher"})
	nsFactory := informers.NewSharedInformerFactoryWithOptions(p.Client, 0, informers.WithTransform(dropManagedFields))
	cmFactory := informers.NewSharedInformerFactoryWithOptions(p.Client, 0, informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootCertConfigMap).String()
		}))
	defer func() {
		cancel()
		queue.ShutDown()
		nsFactory.Shutdown()
		cmFactory.Shutdown()
	}()
	nsInf, cmInf := nsFactory.Core().V1().Namespaces(), cmFactory.Core().V1().ConfigMaps()
	if _, err := nsInf.Informer().AddEventHandler(enqueueNamespace(queue)); err != nil {
		return fmt.Errorf("root cert publisher: %w", err)
	}
	if _, err := cmInf.Informer().AddEventHandler(enqueueConfigMapNamespace(queue)); err != nil {
		return fmt.Errorf("root cert publisher: %w", err)
	}
	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nsInf.Informer().HasSynced, cmInf.Informer().HasSynced) {
		return nil
	}
	stop := context.AfterFunc(ctx, queue.ShutDown)
	defer stop()
	r := &rootCertReconciler{client: p.Client, root: string(p.RootPEM), namespaces: nsInf.Lister(), configMaps: cmInf.Lister()}
	for {
		ns, shutdown := queue.Get()
		if shutdown {
			return nil
		}
		if err := r.reconcile(ctx, ns); err != nil && ctx.Err() == nil {
			log.Warn("publish root cert; retrying", "namespace", ns, "err", err)
			queue.AddRateLimited(ns)
		} else {
			queue.Forget(ns)
		}
		queue.Done(ns)
	}
}

func enqueueNamespace(q workqueue.TypedInterface[string]) cache.ResourceEventHandler {
	add := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && !skippedNamespaces[ns.Name] {
			q.Add(ns.Name)
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }}
}

func enqueueConfigMapNamespace(q workqueue.TypedInterface[string]) cache.ResourceEventHandler {
	add := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == RootCertConfigMap && !skippedNamespaces[cm.Namespace] {
			q.Add(cm.Namespace)
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add}
}

type rootCertReconciler struct {
	client     kubernetes.Interface
	root       string
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
}

// reconcile makes namespace ns's ConfigMap hold the root; nil when nothing is left to do.
func (r *rootCertReconciler) reconcile(ctx context.Context, ns string) error {
	n, err := r.namespaces.Get(ns)
	if apierrors.IsNotFound(err) || (err == nil && n.Status.Phase == corev1.NamespaceTerminating) {
		return nil
	}
	if err != nil {
		return err
	}
	api := r.client.CoreV1().ConfigMaps(ns)
	cm, err := r.configMaps.ConfigMaps(ns).Get(RootCertConfigMap)
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns,
				Labels: map[string]string{rootCertLabelKey: rootCertLabelValue}},
			Data: map[string]string{RootCertKey: r.root},
		}, metav1.CreateOptions{})
		return ignoreUnwritable(err)
	}
	if err != nil {
		return err
	}
	if cm.Data[RootCertKey] == r.root && cm.Labels[rootCertLabelKey] == rootCertLabelValue {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = maps.Clone(cm.Data)
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[RootCertKey] = r.root
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[rootCertLabelKey] = rootCertLabelValue
	_, err = api.Update(ctx, cm, metav1.UpdateOptions{})
	return ignoreUnwritable(err)
}

// ignoreUnwritable drops errors retrying cannot fix: the namespace is being deleted or
// is gone, or RBAC forbids the write (as istiod, which skips such namespaces). An
// AlreadyExists or Conflict is returned: the cache is behind, and the retry sees the
// current object.
func ignoreUnwritable(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) ||
		apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return nil
	}
	return err
}
