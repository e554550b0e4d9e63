package l7

import (
	"cmp"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// DefaultDomainSuffix and DefaultTrustDomain are used when Inputs leaves them empty.
const (
	DefaultDomainSuffix = "cluster.local"
	DefaultTrustDomain  = "cluster.local"
)

// Build translates in into one Waypoint per Gateway of class istio-waypoint and the
// status of every HTTPRoute (per Service parent), VirtualService, DestinationRule and
// targeted AuthorizationPolicy it looked at. It is pure and deterministic: the same
// objects, in any order, give the same Result. It never panics on malformed objects.
//
// Binding (F-WP-2): a Service with a cluster IP is served by waypoint W when
// UseWaypoint names W, W exists and Serves(W's labels, ServiceTraffic). Its TCP ports
// become Ports; the protocol comes from appProtocol, else the port name (Istio's rules).
//
// Routing (F-WP-4, F-WP-5): HTTPRoutes whose parentRefs name a bound Service (group "",
// kind Service, same namespace) give its HTTP ports their routes, in Gateway API
// precedence across all of them; otherwise the oldest VirtualService whose hosts name the
// service gives them, in its order. Neither attached: the port keeps the default route.
// Requests matching no route get 404 (both APIs' semantics).
//
// Fail-closed conventions (each also reported in the object's status):
//   - A rule (HTTPRoute) or http route (VirtualService) using a field the waypoint cannot
//     honour, or with no backend and no redirect, keeps its matches and answers 500 (a
//     Fault abort of 100 %), so its requests never fall through to a broader route.
//   - A backend that does not resolve (unknown service or port, another namespace, a
//     kind other than Service, an undefined subset) gets its share of the weight answered
//     with 500, as Gateway API requires (a Fault abort of that percentage).
//   - A match that cannot be represented (invalid regex, path with '?', sourceLabels …)
//     is dropped; a rule left without matches never matches.
//   - AuthorizationPolicy: see convertPolicy (issue 5 section 3).
//
// Ignored, and said so in the status message: Service-parent HTTPRoute hostnames,
// retry backoff, DestinationRule settings other than subsets, load balancer, connection
// pool limits and outlier detection. exportTo is not evaluated (everything is visible).
func Build(in Inputs) Result {
	ix := newIndex(in)
	ix.bindServices()
	ix.indexDestinationRules()
	ix.attachHTTPRoutes()
	ix.attachVirtualServices()
	ix.finishRoutes()
	ix.attachPolicies()
	return ix.result()
}

// index holds the inputs, looked up by key, and the output under construction.
type index struct {
	suffix, td string

	nsLabels  map[string]map[string]string
	services  map[types.NamespacedName]*corev1.Service
	byHost    map[string]*corev1.Service
	pods      map[string][]*corev1.Pod // by namespace, sorted by name
	gateways  map[types.NamespacedName]*gatewayv1.Gateway
	waypoints map[types.NamespacedName]*Waypoint
	bound     map[types.NamespacedName]*boundService
	boundList []*boundService // sorted by namespace/name
	drs       map[string]*destinationRule

	serviceList []*corev1.Service
	httpRoutes  []*gatewayv1.HTTPRoute
	vss         []*networkingv1.VirtualService
	drList      []*networkingv1.DestinationRule
	aps         []*securityv1.AuthorizationPolicy

	status *statuses
}

// boundService is a service served by a waypoint, with its routes under construction.
type boundService struct {
	waypoint types.NamespacedName
	svc      *corev1.Service
	model    *Service
	// HTTPRoute entries per port number, sorted by precedence in finishRoutes.
	entries      map[uint32][]routeEntry
	hasHTTPRoute bool
	vsRoutes     map[uint32][]Route // from the VirtualService that routes this service
}

func newIndex(in Inputs) *index {
	ix := &index{
		suffix:    cmp.Or(in.DomainSuffix, DefaultDomainSuffix),
		td:        cmp.Or(in.TrustDomain, DefaultTrustDomain),
		nsLabels:  map[string]map[string]string{},
		services:  map[types.NamespacedName]*corev1.Service{},
		byHost:    map[string]*corev1.Service{},
		pods:      map[string][]*corev1.Pod{},
		gateways:  map[types.NamespacedName]*gatewayv1.Gateway{},
		waypoints: map[types.NamespacedName]*Waypoint{},
		bound:     map[types.NamespacedName]*boundService{},
		drs:       map[string]*destinationRule{},
		status:    newStatuses(),
	}
	for _, ns := range live(in.Namespaces) {
		ix.nsLabels[ns.Name] = ns.Labels
	}
	ix.serviceList = live(in.Services)
	for _, svc := range ix.serviceList {
		ix.services[key(svc)] = svc
		ix.byHost[ix.hostname(svc.Namespace, svc.Name)] = svc
	}
	for _, pod := range live(in.Pods) {
		ix.pods[pod.Namespace] = append(ix.pods[pod.Namespace], pod)
	}
	for _, gw := range live(in.Gateways) {
		if string(gw.Spec.GatewayClassName) != wire.WaypointGatewayClass {
			continue
		}
		ix.gateways[key(gw)] = gw
		ix.waypoints[key(gw)] = &Waypoint{Namespace: gw.Namespace, Name: gw.Name, TrustDomain: ix.td}
	}
	ix.httpRoutes = oldestFirst(live(in.HTTPRoutes))
	ix.vss = oldestFirst(live(in.VirtualServices))
	ix.drList = oldestFirst(live(in.DestinationRules))
	ix.aps = live(in.AuthorizationPolicies)
	return ix
}

// hostname is a service's FQDN: <name>.<namespace>.svc.<suffix>.
func (ix *index) hostname(namespace, name string) string {
	return name + "." + namespace + ".svc." + ix.suffix
}

// result assembles the waypoints: services sorted by hostname, clusters, policies.
func (ix *index) result() Result {
	res := Result{Waypoints: map[types.NamespacedName]*Waypoint{}}
	for _, b := range ix.boundList {
		w := ix.waypoints[b.waypoint]
		w.Services = append(w.Services, *b.model)
	}
	for k, w := range ix.waypoints {
		slices.SortFunc(w.Services, func(a, b Service) int { return strings.Compare(a.Hostname, b.Hostname) })
		w.Clusters = ix.clusters(w)
		res.Waypoints[k] = w
	}
	res.Status = ix.status.list()
	return res
}

func key(o metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

// live returns the non-nil objects sorted by namespace/name, without duplicate names
// (the first of equal names in input order is kept).
func live[T interface {
	comparable
	metav1.Object
}](objs []T) []T {
	var zero T
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if o != zero {
			out = append(out, o)
		}
	}
	slices.SortStableFunc(out, func(a, b T) int { return compareNames(a, b) })
	return slices.CompactFunc(out, func(a, b T) bool { return compareNames(a, b) == 0 })
}

// oldestFirst orders objects by creation time, then namespace/name (Gateway API's and
// Istio's tie-breaks).
func oldestFirst[T metav1.Object](objs []T) []T {
	slices.SortStableFunc(objs, func(a, b T) int {
		ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
		return cmp.Or(ta.Time.Compare(tb.Time), compareNames(a, b))
	})
	return objs
}

func compareNames(a, b metav1.Object) int {
	return cmp.Or(strings.Compare(a.GetNamespace(), b.GetNamespace()), strings.Compare(a.GetName(), b.GetName()))
}

// selects reports whether every selector label is on labels with the same value.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
