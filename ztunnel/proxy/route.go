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
}

// Router picks the destination of captured outbound connections from WDS state, as
// Istio's ztunnel does: a service VIP is load-balanced over healthy endpoints (round
// robin), an enrolled workload is reached over HBONE, anything else passes through.
type Router struct {
	Store *state.Store
	rr    sync.Map // service key -> *atomic.Uint64
}

// Route returns the route for a connection to dst.
func (r *Router) Route(dst netip.AddrPort) (Route, error) {
	ip := dst.Addr().Unmap()
	if svc := r.Store.ServiceByVIP(ip); svc != nil {
		return r.routeService(svc, dst.Port())
	}
	if w := r.Store.WorkloadByIP(ip); w != nil {
		return workloadRoute(w, netip.AddrPortFrom(ip, dst.Port())), nil
	}
	return Route{Target: netip.AddrPortFrom(ip, dst.Port())}, nil
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
	var healthy []*state.Workload
	for _, w := range r.Store.Endpoints(svc.Key) {
		if w.Status == workloadapi.WorkloadStatus_HEALTHY && len(w.IPs) > 0 {
			healthy = append(healthy, w)
		}
	}
	if len(healthy) == 0 {
		return Route{}, fmt.Errorf("route %s:%d: %w", svc.Hostname, port, ErrNoHealthyEndpoint)
	}
	ctr, _ := r.rr.LoadOrStore(svc.Key, new(atomic.Uint64))
	n := ctr.(*atomic.Uint64).Add(1) - 1
	w := healthy[n%uint64(len(healthy))]
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
