package waypoint

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// reconcileGateway brings one Gateway's objects and status up to date. Gateways of
// other classes, of a class that is not this controller's, and Gateways being
// deleted are left alone: the garbage collector removes a deleted Gateway's objects,
// and applying them again would recreate them. An error means "retry".
func (r *run) reconcileGateway(ctx context.Context, name types.NamespacedName) error {
	gw, err := r.gateways.Gateways(name.Namespace).Get(name.Name)
	if apierrors.IsNotFound(err) {
		return nil // deleted, or not cached yet (its add event queues it again)
	}
	if err != nil {
		return fmt.Errorf("get gateway: %w", err)
	}
	if string(gw.Spec.GatewayClassName) != wire.WaypointGatewayClass || !r.classOwned() || gw.DeletionTimestamp != nil {
		return nil
	}
	o := observed{verdict: validate(gw), configErr: r.configError(name)}
	if o.verdict.ok {
		if err := r.apply(ctx, gw, &o); err != nil {
			return err
		}
	}
	return r.updateStatus(ctx, gw, o)
}

// apply server-side-applies gw's ServiceAccount, bootstrap ConfigMap (engine envoy),
// Deployment and Service, in that order, and records what the Deployment's and
// Service's current state says about Programmed. Refusals that retrying cannot fix
// (invalid object, forbidden) land in o.applyErr for the status; other errors are
// returned.
func (r *run) apply(ctx context.Context, gw *gatewayv1.Gateway, o *observed) error {
	d, err := r.cfg.build(gw)
	if err != nil {
		o.applyErr = err
		return nil
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	core, apps := r.kube.CoreV1(), r.kube.AppsV1()
	steps := []struct {
		kind string
		do   func() error
	}{
		{"ServiceAccount", func() error {
			_, err := core.ServiceAccounts(gw.Namespace).Apply(ctx, d.serviceAccount, opts)
			return err
		}},
		{"ConfigMap", func() error {
			if d.bootstrap == nil {
				return nil
			}
			_, err := core.ConfigMaps(gw.Namespace).Apply(ctx, d.bootstrap, opts)
			return err
		}},
		{"Deployment", func() error {
			dep, err := apps.Deployments(gw.Namespace).Apply(ctx, d.deployment, opts)
			if err == nil {
				o.available = dep.Status.AvailableReplicas
			}
			return err
		}},
		{"Service", func() error {
			svc, err := core.Services(gw.Namespace).Apply(ctx, d.service, opts)
			if err == nil {
				o.clusterIPs = clusterIPs(svc.Spec.ClusterIPs, svc.Spec.ClusterIP)
			}
			return err
		}},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case err == nil:
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err):
			o.applyErr = fmt.Errorf("apply %s %s/%s: %w", s.kind, gw.Namespace, gw.Name, err)
			r.log.Warn("waypoint object refused", "gateway", gw.Namespace+"/"+gw.Name, "kind", s.kind, "err", err)
			return nil
		default:
			return fmt.Errorf("apply %s %s/%s: %w", s.kind, gw.Namespace, gw.Name, err)
		}
	}
	return nil
}

// clusterIPs: the allocated addresses ("None" of a headless Service is none).
func clusterIPs(ips []string, ip string) []string {
	if len(ips) == 0 && ip != "" {
		ips = []string{ip}
	}
	var out []string
	for _, a := range ips {
		if a != "" && a != "None" {
			out = append(out, a)
		}
	}
	return out
}

// updateStatus writes gw's status when it differs from the one o gives, retrying on
// conflicts with the current object. A Gateway whose generation moved on meanwhile is
// left to the reconcile its update queued.
func (r *run) updateStatus(ctx context.Context, gw *gatewayv1.Gateway, o observed) error {
	api := r.gateway.GatewayV1().Gateways(gw.Namespace)
	gen := gw.Generation
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if gw.Generation != gen || gw.DeletionTimestamp != nil {
			return nil
		}
		st := r.cfg.gatewayStatus(gw, o)
		if equality.Semantic.DeepEqual(st, gw.Status) {
			return nil
		}
		next := gw.DeepCopy()
		next.Status = st
		_, err := api.UpdateStatus(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		r.log.Debug("update gateway status", "gateway", gw.Namespace+"/"+gw.Name, "err", err)
		if apierrors.IsConflict(err) { // the cache is behind: retry on the current object
			fresh, gerr := api.Get(ctx, gw.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			gw = fresh
		}
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update gateway status: %w", err)
	}
	return nil
}
