package waypoint

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// classDescription is the GatewayClass's spec.description (the CRD allows 64 bytes).
const classDescription = "Ambit waypoints: the ambient mesh's L7 proxies"

// classOwned reports whether the istio-waypoint GatewayClass exists with this
// controller's name: only then are its Gateways reconciled (another controller owns
// them otherwise).
func (r *run) classOwned() bool {
	gc, err := r.classes.Get(wire.WaypointGatewayClass)
	return err == nil && gc.DeletionTimestamp == nil && string(gc.Spec.ControllerName) == r.cfg.ControllerName
}

// reconcileClass creates the istio-waypoint GatewayClass when it is missing and sets
// its Accepted and SupportedVersion conditions when it is ours, as istiod does for
// its built-in classes. When the class becomes ours, every Gateway is queued.
func (r *run) reconcileClass(ctx context.Context) error {
	gc, err := r.classes.Get(wire.WaypointGatewayClass)
	if apierrors.IsNotFound(err) {
		r.owned = false
		_, err = r.gateway.GatewayV1().GatewayClasses().Create(ctx, &gatewayv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: wire.WaypointGatewayClass},
			Spec: gatewayv1.GatewayClassSpec{
				ControllerName: gatewayv1.GatewayController(r.cfg.ControllerName),
				Description:    ptr(classDescription),
			},
		}, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create gatewayclass: %w", err)
		}
		return nil // the informer's add event brings it back here
	}
	if err != nil {
		return fmt.Errorf("get gatewayclass: %w", err)
	}
	if gc.DeletionTimestamp != nil {
		r.owned = false
		return nil // its delete event brings it back here, to create it again
	}
	owned := r.classOwned()
	if owned && !r.owned {
		r.enqueueAllGateways()
	}
	if !owned && (r.owned || !r.warnedForeign) {
		r.log.Warn("gatewayclass is not this controller's; its gateways are left alone",
			"gatewayclass", gc.Name, "controllerName", gc.Spec.ControllerName, "want", r.cfg.ControllerName)
		r.warnedForeign = true
	}
	r.owned = owned
	if !owned {
		return nil
	}
	classes := r.gateway.GatewayV1().GatewayClasses()
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		st := classStatus(gc)
		if equality.Semantic.DeepEqual(st, gc.Status) {
			return nil
		}
		next := gc.DeepCopy()
		next.Status = st
		_, err := classes.UpdateStatus(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) { // the cache is behind: retry on the current object
			fresh, gerr := classes.Get(ctx, gc.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			gc = fresh
		}
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update gatewayclass status: %w", err)
	}
	return nil
}

// classStatus: Accepted and SupportedVersion True at the class's generation.
func classStatus(gc *gatewayv1.GatewayClass) gatewayv1.GatewayClassStatus {
	st := *gc.Status.DeepCopy()
	for _, c := range []metav1.Condition{
		{Type: string(gatewayv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.GatewayClassReasonAccepted), Message: "handled by istiod-lite"},
		{Type: string(gatewayv1.GatewayClassConditionStatusSupportedVersion), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.GatewayClassReasonSupportedVersion), Message: "Gateway API v1 is supported"},
	} {
		c.ObservedGeneration = gc.Generation
		meta.SetStatusCondition(&st.Conditions, c)
	}
	return st
}

func ptr[T any](v T) *T { return &v }
