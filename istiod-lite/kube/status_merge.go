package kube

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	istiometa "istio.io/api/meta/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// writeHTTPRoute does one read-modify-write of an HTTPRoute's status.parents.
func (w *StatusWriter) writeHTTPRoute(ctx context.Context, ref l7.ObjectRef, want []l7.ObjectStatus, now time.Time) error {
	c := w.Gateway.GatewayV1().HTTPRoutes(ref.Namespace)
	hr, err := c.Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get HTTPRoute %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	merged := mergeRouteParents(hr, want, now)
	if len(merged) > maxRouteParents {
		w.logger().Warn("HTTPRoute has more status parents than the API allows; extra ones dropped",
			"namespace", ref.Namespace, "name", ref.Name, "parents", len(merged))
		merged = merged[:maxRouteParents]
	}
	if routeParentsEqual(hr.Status.Parents, merged) {
		return nil
	}
	hr.Status.Parents = merged
	if _, err := c.UpdateStatus(ctx, hr, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update HTTPRoute %s/%s status: %w", ref.Namespace, ref.Name, err)
	}
	return nil
}

// maxRouteParents is Gateway API's limit on status.parents (MaxItems=32).
const maxRouteParents = 32

// mergeRouteParents is hr's status.parents with our entries brought to want: entries of
// other controllers stay as they are, ours are replaced in place or dropped when Build
// no longer reports their parent, and new ones are appended in Build's parent order.
// A wanted parent no parentRef of hr's spec yields (the spec changed since Build ran) is
// left out; the next Build reports it again if it is still meant.
func mergeRouteParents(hr *gatewayv1.HTTPRoute, want []l7.ObjectStatus, now time.Time) []gatewayv1.RouteParentStatus {
	wanted := map[string]l7.ObjectStatus{}
	var order []string
	for _, st := range want {
		if _, dup := wanted[st.Parent]; !dup {
			order = append(order, st.Parent)
		}
		wanted[st.Parent] = st
	}
	slices.Sort(order)
	done := map[string]bool{}
	var out []gatewayv1.RouteParentStatus
	for _, ps := range hr.Status.Parents {
		if ps.ControllerName != GatewayControllerName {
			out = append(out, ps)
			continue
		}
		key := parentKey(hr.Namespace, ps.ParentRef)
		st, ok := wanted[key]
		if !ok || done[key] {
			continue // stale or duplicate entry of ours
		}
		if e, ok := routeParentStatus(hr, st, ps.Conditions, now); ok {
			out = append(out, e)
			done[key] = true
		}
	}
	for _, key := range order {
		if done[key] {
			continue
		}
		if e, ok := routeParentStatus(hr, wanted[key], nil, now); ok {
			out = append(out, e)
			done[key] = true
		}
	}
	return out
}

// routeParentStatus is our status entry for st's parent, its parentRef taken from the
// spec entry it came from (group "" and kind Service, or Gateway API's group and kind
// Gateway, namespace explicit), with conditions merged over prev.
func routeParentStatus(hr *gatewayv1.HTTPRoute, st l7.ObjectStatus, prev []metav1.Condition, now time.Time) (gatewayv1.RouteParentStatus, bool) {
	for _, pr := range hr.Spec.ParentRefs {
		if parentKey(hr.Namespace, pr) != st.Parent {
			continue
		}
		group, kind := gatewayv1.Group(""), gatewayv1.Kind("Service")
		if strings.HasPrefix(st.Parent, "Gateway/") {
			group, kind = gatewayv1.GroupName, "Gateway"
		}
		ns := gatewayv1.Namespace(hr.Namespace)
		if pr.Namespace != nil && *pr.Namespace != "" {
			ns = *pr.Namespace
		}
		ref := gatewayv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: pr.Name,
			SectionName: pr.SectionName, Port: pr.Port}
		return gatewayv1.RouteParentStatus{
			ParentRef:      *ref.DeepCopy(),
			ControllerName: GatewayControllerName,
			Conditions:     mergeConditions(prev, st.Conditions, st.Generation, now),
		}, true
	}
	return gatewayv1.RouteParentStatus{}, false
}

// parentKey names a parentRef as l7.ObjectStatus.Parent does: "Service/<ns>/<name>"
// plus ":<port>" or "/<sectionName>", or "Gateway/<ns>/<name>"; "" for other kinds.
func parentKey(routeNamespace string, pr gatewayv1.ParentReference) string {
	group, kind := gatewayv1.GroupName, "Gateway"
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		kind = string(*pr.Kind)
	}
	ns := routeNamespace
	if pr.Namespace != nil && *pr.Namespace != "" {
		ns = string(*pr.Namespace)
	}
	switch {
	case (group == "" || group == "core") && kind == "Service":
		key := "Service/" + ns + "/" + string(pr.Name)
		switch {
		case pr.Port != nil:
			key += ":" + strconv.Itoa(int(*pr.Port))
		case pr.SectionName != nil:
			key += "/" + string(*pr.SectionName)
		}
		return key
	case group == gatewayv1.GroupName && kind == "Gateway":
		return "Gateway/" + ns + "/" + string(pr.Name)
	}
	return ""
}

// mergeConditions is want with observedGeneration set and each LastTransitionTime kept
// from prev's condition of the same type when the status did not change, else now.
func mergeConditions(prev, want []metav1.Condition, generation int64, now time.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(want))
	for _, c := range want {
		c.ObservedGeneration = generation
		c.LastTransitionTime = metav1.NewTime(now).Rfc3339Copy()
		i := slices.IndexFunc(prev, func(p metav1.Condition) bool { return p.Type == c.Type })
		if i >= 0 && prev[i].Status == c.Status && !prev[i].LastTransitionTime.IsZero() {
			c.LastTransitionTime = prev[i].LastTransitionTime
		}
		out = append(out, c)
	}
	return out
}

// routeParentsEqual compares parent statuses, ignoring condition times.
func routeParentsEqual(a, b []gatewayv1.RouteParentStatus) bool {
	return slices.EqualFunc(a, b, func(x, y gatewayv1.RouteParentStatus) bool {
		return x.ControllerName == y.ControllerName && equality.Semantic.DeepEqual(x.ParentRef, y.ParentRef) &&
			slices.EqualFunc(x.Conditions, y.Conditions, func(p, q metav1.Condition) bool {
				p.LastTransitionTime, q.LastTransitionTime = metav1.Time{}, metav1.Time{}
				return p == q
			})
	})
}

// mergeIstioConditions is prev with the conditions of want's types replaced in place
// (duplicates dropped) and new types appended; other types are kept as they are.
func mergeIstioConditions(prev []*istiometa.IstioCondition, want []metav1.Condition, generation int64, now time.Time) []*istiometa.IstioCondition {
	ours := map[string]metav1.Condition{}
	for _, c := range want {
		ours[c.Type] = c
	}
	done := map[string]bool{}
	var out []*istiometa.IstioCondition
	for _, p := range prev {
		c, mine := ours[p.GetType()]
		switch {
		case !mine:
			out = append(out, p)
		case !done[c.Type]:
			out = append(out, istioCondition(c, p, generation, now))
			done[c.Type] = true
		}
	}
	for _, c := range want {
		if !done[c.Type] {
			out = append(out, istioCondition(c, nil, generation, now))
			done[c.Type] = true
		}
	}
	return out
}

func istioCondition(c metav1.Condition, prev *istiometa.IstioCondition, generation int64, now time.Time) *istiometa.IstioCondition {
	ic := &istiometa.IstioCondition{
		Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, ObservedGeneration: generation,
		LastTransitionTime: timestamppb.New(now.Truncate(time.Second)),
	}
	if prev != nil && prev.GetStatus() == ic.Status && prev.GetLastTransitionTime() != nil {
		ic.LastTransitionTime = prev.GetLastTransitionTime()
	}
	return ic
}

// istioConditionsEqual compares Istio conditions, ignoring probe and transition times.
func istioConditionsEqual(a, b []*istiometa.IstioCondition) bool {
	return slices.EqualFunc(a, b, func(x, y *istiometa.IstioCondition) bool {
		return x.GetType() == y.GetType() && x.GetStatus() == y.GetStatus() && x.GetReason() == y.GetReason() &&
			x.GetMessage() == y.GetMessage() && x.GetObservedGeneration() == y.GetObservedGeneration()
	})
}
