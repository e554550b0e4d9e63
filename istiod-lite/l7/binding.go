package l7

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Traffic is the kind of address traffic is sent to, which a waypoint may or may not
// serve (its istio.io/waypoint-for label).
type Traffic int

// Traffic kinds.
const (
	ServiceTraffic  Traffic = iota // to a service VIP
	WorkloadTraffic                // to a pod IP
)

// UseWaypoint resolves which waypoint an object uses, as Istio ambient: the object's own
// istio.io/use-waypoint label if it has one, else its namespace's (nsLabels; nil for
// none). The value "none" (on the object) opts out even when the namespace has a
// waypoint. istio.io/use-waypoint-namespace beside the label that applies names the
// waypoint's namespace; by default it is the namespace of the object holding the label
// (objNamespace for the object's own label). ok is false when no waypoint applies.
func UseWaypoint(objNamespace string, objLabels, nsLabels map[string]string) (gw types.NamespacedName, ok bool) {
	if name, has := objLabels[wire.LabelUseWaypoint]; has {
		return waypointRef(name, objLabels[wire.LabelUseWaypointNS], objNamespace)
	}
	if name, has := nsLabels[wire.LabelUseWaypoint]; has {
		return waypointRef(name, nsLabels[wire.LabelUseWaypointNS], objNamespace)
	}
	return types.NamespacedName{}, false
}

func waypointRef(name, ns, defaultNS string) (types.NamespacedName, bool) {
	if name == "" || name == wire.WaypointNone {
		return types.NamespacedName{}, false
	}
	if ns == "" {
		ns = defaultNS
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

// Serves reports whether a waypoint Gateway with the given labels handles traffic of kind
// t: istio.io/waypoint-for "service" (the default, also for unknown values), "workload",
// "all" or "none".
func Serves(gatewayLabels map[string]string, t Traffic) bool {
	switch gatewayLabels[wire.LabelWaypointFor] {
	case wire.WaypointForAll:
		return true
	case wire.WaypointNone:
		return false
	case wire.WaypointForWorkload:
		return t == WorkloadTraffic
	default:
		return t == ServiceTraffic
	}
}
