package waypoint

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// The one listener a waypoint Gateway has (as Istio's waypoints).
const (
	ListenerName = "mesh"
	// ProtocolHBONE is the listener protocol of waypoints (Istio's).
	ProtocolHBONE gatewayv1.ProtocolType = "HBONE"
)

// Condition reasons this controller sets beyond Gateway API's own.
const (
	// ReasonInvalid: Accepted False when the Gateway cannot be a waypoint; Programmed
	// False when it is not accepted, its objects were refused, or its xDS
	// configuration failed (SetConfigError).
	ReasonInvalid = "Invalid"
	// ReasonUnsupportedProtocol: Accepted False when the listener's protocol is not
	// HBONE.
	ReasonUnsupportedProtocol = "UnsupportedProtocol"
)

// maxMessage bounds condition messages (the CRD allows 32768 bytes).
const maxMessage = 4096

// verdict is whether a Gateway can be a waypoint, and why not.
type verdict struct {
	ok      bool
	reason  string
	message string
	// listener[i] is the Accepted reason of spec.listeners[i] ("" = accepted).
	listener []gatewayv1.ListenerConditionReason
}

// validate checks what this controller can deploy: a name usable as a Service name
// and exactly one listener {name mesh, port 15008, protocol HBONE}.
func validate(gw *gatewayv1.Gateway) verdict {
	v := verdict{ok: true, reason: string(gatewayv1.GatewayReasonAccepted), message: "waypoint accepted",
		listener: make([]gatewayv1.ListenerConditionReason, len(gw.Spec.Listeners))}
	var problems []string
	invalid := func(reason, format string, args ...any) {
		if v.ok {
			v.ok, v.reason = false, reason
		}
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	if errs := validation.IsDNS1035Label(gw.Name); len(errs) > 0 {
		invalid(ReasonInvalid, "name %q cannot name the waypoint Service: %s", gw.Name, strings.Join(errs, "; "))
	}
	if n := len(gw.Spec.Listeners); n != 1 {
		invalid(ReasonInvalid, "a waypoint has exactly one listener {name: %s, port: %d, protocol: %s}, not %d",
			ListenerName, wire.PortHBONE, ProtocolHBONE, n)
	}
	for i, l := range gw.Spec.Listeners {
		switch {
		case l.Protocol != ProtocolHBONE:
			v.listener[i] = gatewayv1.ListenerReasonUnsupportedProtocol
			invalid(ReasonUnsupportedProtocol, "listener %q: protocol %q is not supported (want %s)", l.Name, l.Protocol, ProtocolHBONE)
		case l.Port != wire.PortHBONE:
			v.listener[i] = gatewayv1.ListenerReasonPortUnavailable
			invalid(ReasonInvalid, "listener %q: port %d (want %d)", l.Name, l.Port, wire.PortHBONE)
		case l.Name != ListenerName:
			v.listener[i] = gatewayv1.ListenerReasonUnsupportedValue
			invalid(ReasonInvalid, "listener %q: name must be %q", l.Name, ListenerName)
		}
	}
	if !v.ok {
		v.message = truncate(strings.Join(problems, "; "))
	}
	return v
}

// observed is what the controller saw of a Gateway's objects.
type observed struct {
	verdict   verdict
	applyErr  error // the API server refused an object (e.g. invalid labels)
	configErr error // SetConfigError
	// available is the Deployment's status.availableReplicas.
	available int32
	// clusterIPs are the Service's cluster IPs (none before allocation).
	clusterIPs []string
}

// gatewayStatus returns gw's status from o: conditions Accepted and Programmed (at
// gw's generation, transition times kept while unchanged), one listener status per
// listener, and the Service's cluster IPs then its hostname as addresses once
// Programmed can be judged. Conditions of other types are kept.
func (c *Config) gatewayStatus(gw *gatewayv1.Gateway, o observed) gatewayv1.GatewayStatus {
	st := *gw.Status.DeepCopy()
	gen := gw.Generation
	acc := metav1.Condition{Type: string(gatewayv1.GatewayConditionAccepted), Status: metav1.ConditionTrue,
		Reason: o.verdict.reason, Message: o.verdict.message, ObservedGeneration: gen}
	if !o.verdict.ok {
		acc.Status = metav1.ConditionFalse
	}
	prog := programmed(gw, o)
	prog.ObservedGeneration = gen
	meta.SetStatusCondition(&st.Conditions, acc)
	meta.SetStatusCondition(&st.Conditions, prog)

	st.Addresses = nil
	if o.verdict.ok {
		ip := gatewayv1.IPAddressType
		for _, a := range o.clusterIPs {
			st.Addresses = append(st.Addresses, gatewayv1.GatewayStatusAddress{Type: &ip, Value: a})
		}
		if len(o.clusterIPs) > 0 {
			host := gatewayv1.HostnameAddressType
			st.Addresses = append(st.Addresses, gatewayv1.GatewayStatusAddress{Type: &host, Value: c.hostname(gw)})
		}
	}
	st.Listeners = listenerStatuses(gw, o.verdict, prog, st.Listeners)
	return st
}

// programmed: True once the Deployment has an available replica and the Service a
// cluster IP; False Invalid when the Gateway or its configuration is unusable; False
// Pending while waiting.
func programmed(gw *gatewayv1.Gateway, o observed) metav1.Condition {
	cond := func(status metav1.ConditionStatus, reason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: string(gatewayv1.GatewayConditionProgrammed), Status: status,
			Reason: reason, Message: truncate(fmt.Sprintf(format, args...))}
	}
	pending := string(gatewayv1.GatewayReasonPending)
	switch {
	case !o.verdict.ok:
		return cond(metav1.ConditionFalse, ReasonInvalid, "gateway not accepted: %s", o.verdict.message)
	case o.applyErr != nil:
		return cond(metav1.ConditionFalse, ReasonInvalid, "%v", o.applyErr)
	case o.configErr != nil:
		return cond(metav1.ConditionFalse, ReasonInvalid, "waypoint configuration: %v", o.configErr)
	case len(o.clusterIPs) == 0:
		return cond(metav1.ConditionFalse, pending, "waiting for Service %s/%s to get a cluster IP", gw.Namespace, gw.Name)
	case o.available < 1:
		return cond(metav1.ConditionFalse, pending, "waiting for Deployment %s/%s to have an available replica", gw.Namespace, gw.Name)
	}
	return cond(metav1.ConditionTrue, string(gatewayv1.GatewayReasonProgrammed), "waypoint deployed")
}

// listenerStatuses: Accepted per the verdict, Programmed as the Gateway's, and
// ResolvedRefs (nothing to resolve) for each listener, keeping transition times.
func listenerStatuses(gw *gatewayv1.Gateway, v verdict, prog metav1.Condition, old []gatewayv1.ListenerStatus) []gatewayv1.ListenerStatus {
	var out []gatewayv1.ListenerStatus
	for i, l := range gw.Spec.Listeners {
		ls := gatewayv1.ListenerStatus{Name: l.Name, SupportedKinds: []gatewayv1.RouteGroupKind{}}
		for _, o := range old {
			if o.Name == l.Name {
				ls.Conditions = o.Conditions
				ls.AttachedRoutes = o.AttachedRoutes
			}
		}
		acc := metav1.Condition{Type: string(gatewayv1.ListenerConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.ListenerReasonAccepted), Message: "listener accepted"}
		if r := v.listener[i]; r != "" {
			acc.Status, acc.Reason, acc.Message = metav1.ConditionFalse, string(r), v.message
		}
		lp := prog // reasons Programmed, Invalid and Pending are listener reasons too
		lp.Type = string(gatewayv1.ListenerConditionProgrammed)
		for _, cnd := range []metav1.Condition{acc, lp, {Type: string(gatewayv1.ListenerConditionResolvedRefs),
			Status: metav1.ConditionTrue, Reason: string(gatewayv1.ListenerReasonResolvedRefs), Message: "no references"}} {
			cnd.ObservedGeneration = gw.Generation
			meta.SetStatusCondition(&ls.Conditions, cnd)
		}
		out = append(out, ls)
	}
	return out
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage-3], "") + "..."
}
