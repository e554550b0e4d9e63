package kube

import (
	"context"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// Plural resource names of the custom resources Source watches.
const (
	resourceAuthorizationPolicies = "authorizationpolicies"
	resourcePeerAuthentications   = "peerauthentications"
	resourceVirtualServices       = "virtualservices"
	resourceDestinationRules      = "destinationrules"
	resourceGateways              = "gateways"
	resourceHTTPRoutes            = "httproutes"
)

// crdKinds lists the custom resources read through the given clients (nil: none of
// that client's kinds): Istio's security policies, which ztunnel enforces, then the
// waypoints' inputs.
func crdKinds(istio istioclient.Interface, gw gatewayclient.Interface) []crdKind {
	var kinds []crdKind
	if istio != nil {
		kinds = append(kinds,
			crdKind{gv: securityv1.SchemeGroupVersion, resource: resourceAuthorizationPolicies, required: true, obj: &securityv1.AuthorizationPolicy{},
				informer: func() cache.SharedIndexInformer {
					api := istio.SecurityV1().AuthorizationPolicies(metav1.NamespaceAll)
					return newInformer(istio, &securityv1.AuthorizationPolicy{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.AuthorizationPolicies) }},
			crdKind{gv: securityv1.SchemeGroupVersion, resource: resourcePeerAuthentications, required: true, obj: &securityv1.PeerAuthentication{},
				informer: func() cache.SharedIndexInformer {
					api := istio.SecurityV1().PeerAuthentications(metav1.NamespaceAll)
					return newInformer(istio, &securityv1.PeerAuthentication{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.PeerAuthentications) }},
			crdKind{gv: networkingv1.SchemeGroupVersion, resource: resourceVirtualServices, obj: &networkingv1.VirtualService{},
				informer: func() cache.SharedIndexInformer {
					api := istio.NetworkingV1().VirtualServices(metav1.NamespaceAll)
					return newInformer(istio, &networkingv1.VirtualService{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.VirtualServices) }},
			crdKind{gv: networkingv1.SchemeGroupVersion, resource: resourceDestinationRules, obj: &networkingv1.DestinationRule{},
				informer: func() cache.SharedIndexInformer {
					api := istio.NetworkingV1().DestinationRules(metav1.NamespaceAll)
					return newInformer(istio, &networkingv1.DestinationRule{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.DestinationRules) }},
		)
	}
	if gw != nil {
		kinds = append(kinds,
			crdKind{gv: gatewayv1.SchemeGroupVersion, resource: resourceGateways, obj: &gatewayv1.Gateway{},
				informer: func() cache.SharedIndexInformer {
					api := gw.GatewayV1().Gateways(metav1.NamespaceAll)
					return newInformer(gw, &gatewayv1.Gateway{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.Gateways) }},
			crdKind{gv: gatewayv1.SchemeGroupVersion, resource: resourceHTTPRoutes, obj: &gatewayv1.HTTPRoute{},
				informer: func() cache.SharedIndexInformer {
					api := gw.GatewayV1().HTTPRoutes(metav1.NamespaceAll)
					return newInformer(gw, &gatewayv1.HTTPRoute{}, listFn(api.List), api.Watch)
				},
				addTo: func(items []any, s *kubefile.Snapshot) { listInto(items, &s.HTTPRoutes) }},
		)
	}
	return kinds
}

// listFn adapts a typed List method to the ListWatch signature.
func listFn[T runtime.Object](list func(context.Context, metav1.ListOptions) (T, error)) func(context.Context, metav1.ListOptions) (runtime.Object, error) {
	return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }
}
