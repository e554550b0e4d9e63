package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// ErrNoHealthyEndpoint is returned when a service VIP has no healthy endpoint for the port.
var ErrNoHealthyEndpoint = errors.New("no healthy endpoint")

// ErrNoWaypoint is returned when a destination's waypoint is unknown or has no healthy
// instance: the connection fails rather than bypass the waypoint's policy.
var ErrNoWaypoint = errors.New("waypoint unavailable")

// Route is the outbound decision for one captured connection.
type Route struct {
	// HBONE is true when the destination is in the mesh: dial Gateway over HBONE with
	// Authority as the CONNECT target; false means plain TCP passthrough to Target.
	HBONE bool
	// Gateway is the HBONE peer, destination-pod-IP:15008 (HBONE only).
	Gateway netip.AddrPort
	// Target is the real destination ip:port (the :authority for HBONE).
	Target netip.AddrPort
	// Identity is the SPIFFE identity the destination must present (HBONE only).
	Identity spiffe.Identity
	// Workload is the destination workload, nil when outside the mesh.
	Workload *state.Workload
	// Service is the service whose VIP was dialed, nil otherwise.
	Service *state.Service
	// Waypoint is true when Gateway is the destination's waypoint (Workload is then the
	// waypoint instance and Identity its identity).
	Waypoint bool
}

// Router picks the destination of captured outbound connections from WDS state, as
// Istio's ztunnel does: a service or workload with a waypoint is reached through one of
// the waypoint's instances (HBONE to its port 15008, the original destination as
// :authority), a service VIP is otherwise load-balanced over healthy endpoints (round
// robin), an enrolled workload is reached over HBONE, anything else passes through.
type Router struct {
	Store *state.Store
	rr    sync.Map // service key -> *atomic.Uint64
}

// Route returns the route for a connection to dst.
func (r *Router) Route(dst netip.AddrPort) (Route, error) {
	ip := dst.Addr().Unmap()
	target := netip.AddrPortFrom(ip, dst.Port())
	if svc := r.Store.ServiceByVIP(ip); svc != nil {
		if gw := svc.GetWaypoint(); gw != nil {
			rt, err := r.routeWaypoint(gw, target)
			rt.Service = svc
			return rt, err
		}
		return r.routeService(svc, dst.Port())
	}
	if w := r.Store.WorkloadByIP(ip); w != nil {
		if gw := w.GetWaypoint(); gw != nil {
			return r.routeWaypoint(gw, target)
		}
		return workloadRoute(w, target), nil
	}
	return Route{Target: netip.AddrPortFrom(ip, dst.Port())}, nil
}

// routeWaypoint sends target's traffic to an instance of the waypoint gw names (by its
// service VIP or hostname), round robin over the healthy ones.
func (r *Router) routeWaypoint(gw *workloadapi.GatewayAddress, target netip.AddrPort) (Route, error) {
	var svc *state.Service
	switch d := gw.GetDestination().(type) {
	case *workloadapi.GatewayAddress_Address:
		if ip, ok := netip.AddrFromSlice(d.Address.GetAddress()); ok {
			svc = r.Store.ServiceByVIP(ip)
		}
	case *workloadapi.GatewayAddress_Hostname:
		svc = r.Store.Service(d.Hostname.GetNamespace() + "/" + d.Hostname.GetHostname())
	}
	if svc == nil {
		return Route{Target: target}, fmt.Errorf("route %s: %w: waypoint service not found", target, ErrNoWaypoint)
	}
	w := r.pick(svc)
	if w == nil {
		return Route{Target: target}, fmt.Errorf("route %s via %s: %w", target, svc.Hostname, ErrNoWaypoint)
	}
	port := uint16(gw.GetHboneMtlsPort())
	if port == 0 {
		port = wire.PortHBONE
	}
	return Route{
		HBONE: true, Waypoint: true, Target: target, Workload: w, Identity: w.Identity(),
		Gateway: netip.AddrPortFrom(w.IPs[0], port),
	}, nil
}

// pick returns the next healthy endpoint of svc (round robin), nil when it has none.
func (r *Router) pick(svc *state.Service) *state.Workload {
	var healthy []*state.Workload
	for _, w := range r.Store.Endpoints(svc.Key) {
		if w.Status == workloadapi.WorkloadStatus_HEALTHY && len(w.IPs) > 0 {
			healthy = append(healthy, w)
		}
	}
	if len(healthy) == 0 {
		return nil
	}
	ctr, _ := r.rr.LoadOrStore(svc.Key, new(atomic.Uint64))
	n := ctr.(*atomic.Uint64).Add(1) - 1
	return healthy[n%uint64(len(healthy))]
}

func workloadRoute(w *state.Workload, target netip.AddrPort) Route {
	rt := Route{Target: target, Workload: w}
	if w.HBONE() {
		rt.HBONE = true
		rt.Gateway = netip.AddrPortFrom(target.Addr(), wire.PortHBONE)
		rt.Identity = w.Identity()
	}
	return rt
}

func (r *Router) routeService(svc *state.Service, port uint16) (Route, error) {
	w := r.pick(svc)
	if w == nil {
		return Route{}, fmt.Errorf("route %s:%d: %w", svc.Hostname, port, ErrNoHealthyEndpoint)
	}
	target := netip.AddrPortFrom(w.IPs[0], targetPort(svc, w, port))
	rt := workloadRoute(w, target)
	rt.Service = svc
	return rt, nil
}

// targetPort maps a service port to the workload's port: the workload's own port list
// for the service first, then the service's, else the same number.
func targetPort(svc *state.Service, w *state.Workload, port uint16) uint16 {
	if pl := w.Services[svc.Key]; pl != nil {
		for _, p := range pl.Ports {
			if p.ServicePort == uint32(port) && p.TargetPort != 0 {
				return uint16(p.TargetPort)
			}
		}
	}
	for _, p := range svc.Ports {
		if p.ServicePort == uint32(port) && p.TargetPort != 0 {
			return uint16(p.TargetPort)
		}
	}
	return port
}
