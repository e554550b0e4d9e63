package model

import (
	"istio.io/istio/pkg/workloadapi"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// waypoint is a waypoint as WDS sees it: where ztunnels send the traffic it serves (its
// Service's VIP, HBONE port 15008) and the labels saying what it serves.
type waypoint struct {
	vip    []byte // 4 or 16 bytes
	labels map[string]string
	key    string // canonical form, for comparing tables between builds
}

// waypointTable is every usable waypoint of a snapshot: a Gateway of class
// istio-waypoint whose Service (same namespace and name, made by istiod-lite's
// waypoint controller) has a cluster IP. A waypoint without one yet is not usable:
// traffic keeps going directly until it is.
type waypointTable map[types.NamespacedName]waypoint

func buildWaypoints(s *kubefile.Snapshot) waypointTable {
	if len(s.Gateways) == 0 {
		return nil
	}
	services := make(map[types.NamespacedName]*corev1.Service, len(s.Gateways))
	for _, gw := range s.Gateways {
		if gw != nil && string(gw.Spec.GatewayClassName) == wire.WaypointGatewayClass {
			services[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}] = nil
		}
	}
	for _, svc := range s.Services {
		k := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		if _, ok := services[k]; ok {
			services[k] = svc
		}
	}
	t := waypointTable{}
	for _, gw := range s.Gateways {
		k := types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}
		svc := services[k]
		if svc == nil {
			continue
		}
		ips := serviceIPs(svc)
		if len(ips) == 0 {
			continue
		}
		vip := ips[0].AsSlice()
		t[k] = waypoint{vip: vip, labels: gw.Labels, key: ips[0].String() + "|" + gw.Labels[wire.LabelWaypointFor]}
	}
	return t
}

// equal reports whether two tables give every object the same waypoint.
func (t waypointTable) equal(o waypointTable) bool {
	if len(t) != len(o) {
		return false
	}
	for k, w := range t {
		if ow, ok := o[k]; !ok || ow.key != w.key {
			return false
		}
	}
	return true
}

// address is the GatewayAddress of the waypoint named by an object's labels (and its
// namespace's) for traffic of kind kind, nil when none applies. A waypoint's own Service
// and pods never use a waypoint.
func (b *builder) waypointAddress(namespace string, objLabels map[string]string, kind l7.Traffic) *workloadapi.GatewayAddress {
	if len(b.waypoints) == 0 || objLabels[wire.LabelGatewayName] != "" {
		return nil
	}
	var nsLabels map[string]string
	if ns := b.namespaces[namespace]; ns != nil {
		nsLabels = ns.Labels
	}
	ref, ok := l7.UseWaypoint(namespace, objLabels, nsLabels)
	if !ok {
		return nil
	}
	w, ok := b.waypoints[ref]
	if !ok || !l7.Serves(w.labels, kind) {
		return nil
	}
	return &workloadapi.GatewayAddress{
		Destination: &workloadapi.GatewayAddress_Address{
			Address: &workloadapi.NetworkAddress{Address: w.vip},
		},
		HboneMtlsPort: wire.PortHBONE,
	}
}

// isWaypointService reports whether svc is a waypoint's own Service.
func (b *builder) isWaypointService(svc *corev1.Service) bool {
	_, ok := b.waypoints[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}]
	return ok
}
