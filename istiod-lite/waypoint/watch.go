package waypoint

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// watch registers the event handlers: the class key on istio-waypoint GatewayClass
// events, a Gateway's key on its own events and on changes of the objects it
// controls. Updates of owned objects that change nothing the controller reads or
// writes (a resync, a status field it ignores) queue nothing, so that applying an
// unchanged object never loops.
func (r *run) watch(gwf gatewayinformers.SharedInformerFactory, kf informers.SharedInformerFactory) error {
	classes, gateways := gwf.Gateway().V1().GatewayClasses(), gwf.Gateway().V1().Gateways()
	r.classes, r.gateways = classes.Lister(), gateways.Lister()

	classEvent := func(obj any) {
		if o, ok := metaOf(obj); ok && o.GetName() == wire.WaypointGatewayClass {
			r.queue.Add(classKey)
		}
	}
	gatewayEvent := func(obj any) {
		if gw, ok := unwrap(obj).(*gatewayv1.Gateway); ok && string(gw.Spec.GatewayClassName) == wire.WaypointGatewayClass {
			r.queue.Add(key{gateway: types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}})
		}
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{classes.Informer(), funcs(classEvent, func(_, n any) { classEvent(n) })},
		{gateways.Informer(), funcs(gatewayEvent, func(o, n any) { gatewayEvent(o); gatewayEvent(n) })},
		{kf.Apps().V1().Deployments().Informer(), r.ownedHandler(deploymentChanged)},
		{kf.Core().V1().Services().Informer(), r.ownedHandler(serviceChanged)},
		{kf.Core().V1().ServiceAccounts().Informer(), r.ownedHandler(metaChanged)},
		{kf.Core().V1().ConfigMaps().Informer(), r.ownedHandler(configMapChanged)},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
	}
	return nil
}

// funcs handles add and delete with one function, update with another.
func funcs(addOrDelete func(any), update func(oldObj, newObj any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{AddFunc: addOrDelete, UpdateFunc: update, DeleteFunc: addOrDelete}
}

// ownedHandler queues the controlling Gateway of an object on add, delete and on
// updates that changed(old, new) reports.
func (r *run) ownedHandler(changed func(oldObj, newObj any) bool) cache.ResourceEventHandler {
	enqueue := func(obj any) {
		o, ok := metaOf(obj)
		if !ok {
			return
		}
		ref := metav1.GetControllerOfNoCopy(o)
		if ref == nil || ref.Kind != "Gateway" || ref.APIVersion != gatewayv1.GroupVersion.String() {
			return
		}
		r.queue.Add(key{gateway: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
	}
	return funcs(enqueue, func(oldObj, newObj any) {
		if changed(oldObj, newObj) {
			enqueue(newObj)
		}
	})
}

func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

func metaOf(obj any) (metav1.Object, bool) {
	a, ok := unwrap(obj).(metav1.ObjectMetaAccessor)
	if !ok {
		return nil, false
	}
	return a.GetObjectMeta(), true
}

// metaChanged: labels, annotations, owners or deletion changed.
func metaChanged(oldObj, newObj any) bool {
	o, ok1 := metaOf(oldObj)
	n, ok2 := metaOf(newObj)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(o.GetLabels(), n.GetLabels()) ||
		!equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) ||
		!equality.Semantic.DeepEqual(o.GetOwnerReferences(), n.GetOwnerReferences()) ||
		(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
}

// deploymentChanged: metadata, spec, or the available replica count (Programmed).
func deploymentChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*appsv1.Deployment)
	n, ok2 := newObj.(*appsv1.Deployment)
	return !ok1 || !ok2 || metaChanged(oldObj, newObj) || !equality.Semantic.DeepEqual(o.Spec, n.Spec) ||
		o.Status.AvailableReplicas != n.Status.AvailableReplicas
}

// serviceChanged: metadata or spec (cluster IPs are in the spec).
func serviceChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.Service)
	n, ok2 := newObj.(*corev1.Service)
	return !ok1 || !ok2 || metaChanged(oldObj, newObj) || !equality.Semantic.DeepEqual(o.Spec, n.Spec)
}

func configMapChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.ConfigMap)
	n, ok2 := newObj.(*corev1.ConfigMap)
	return !ok1 || !ok2 || metaChanged(oldObj, newObj) || !equality.Semantic.DeepEqual(o.Data, n.Data)
}
