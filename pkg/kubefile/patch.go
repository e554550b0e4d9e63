package kubefile

import (
	"cmp"
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// patchSorted returns a copy of the sorted snapshot prev in which, for each i, the
// objects of olds[i] are replaced by those of news[i], position for position. ok is
// false, and the caller must merge and sort, unless every replacement keeps the kind,
// namespace and name of the object it replaces and every replaced object is in prev:
// then the order is unchanged and no sort is needed.
func patchSorted(prev *Snapshot, olds, news []*Snapshot) (*Snapshot, bool) {
	next := &Snapshot{}
	ok := patchKind(next, prev, olds, news, func(s *Snapshot) *[]*corev1.Pod { return &s.Pods },
		func(o *corev1.Pod) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*corev1.Namespace { return &s.Namespaces },
			func(o *corev1.Namespace) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*corev1.Service { return &s.Services },
			func(o *corev1.Service) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*corev1.ServiceAccount { return &s.ServiceAccounts },
			func(o *corev1.ServiceAccount) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*corev1.Node { return &s.Nodes },
			func(o *corev1.Node) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*discoveryv1.EndpointSlice { return &s.EndpointSlices },
			func(o *discoveryv1.EndpointSlice) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*securityv1.AuthorizationPolicy { return &s.AuthorizationPolicies },
			func(o *securityv1.AuthorizationPolicy) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*securityv1.PeerAuthentication { return &s.PeerAuthentications },
			func(o *securityv1.PeerAuthentication) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*gatewayv1.Gateway { return &s.Gateways },
			func(o *gatewayv1.Gateway) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*gatewayv1.HTTPRoute { return &s.HTTPRoutes },
			func(o *gatewayv1.HTTPRoute) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*networkingv1.VirtualService { return &s.VirtualServices },
			func(o *networkingv1.VirtualService) *metav1.ObjectMeta { return &o.ObjectMeta }) &&
		patchKind(next, prev, olds, news, func(s *Snapshot) *[]*networkingv1.DestinationRule { return &s.DestinationRules },
			func(o *networkingv1.DestinationRule) *metav1.ObjectMeta { return &o.ObjectMeta })
	if !ok {
		return nil, false
	}
	return next, true
}

// patchKind is patchSorted for the list field selects; it sets next's list.
func patchKind[T any](next, prev *Snapshot, olds, news []*Snapshot, field func(*Snapshot) *[]*T, meta func(*T) *metav1.ObjectMeta) bool {
	list := *field(prev)
	copied := false
	for i := range olds {
		o, n := *field(olds[i]), *field(news[i])
		if len(o) != len(n) {
			return false
		}
		for j := range o {
			mo, mn := meta(o[j]), meta(n[j])
			if mo.Namespace != mn.Namespace || mo.Name != mn.Name {
				return false
			}
			k, found := slices.BinarySearchFunc(list, mo, func(e *T, t *metav1.ObjectMeta) int { return compareMeta(meta(e), t) })
			// Equal keys (the same object in two files) may sit in any order.
			for found && k < len(list) && list[k] != o[j] && compareMeta(meta(list[k]), mo) == 0 {
				k++
			}
			if !found || k >= len(list) || list[k] != o[j] {
				return false
			}
			if !copied {
				list, copied = slices.Clone(list), true
			}
			list[k] = n[j]
		}
	}
	*field(next) = list
	return true
}

func compareMeta(a, b *metav1.ObjectMeta) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}
