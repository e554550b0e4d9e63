package proxy

import (
	"errors"
	"net/netip"
	"testing"

	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

const waypointKey = "demo/wp.demo.svc.cluster.local"

// waypointStore holds a service (VIP 10.96.0.20) and a workload (10.20.3.2) that use the
// waypoint wp (VIP 10.96.0.50), the waypoint's instances, and a service without one.
func waypointStore(t *testing.T, instances ...*workloadapi.Address) *Router {
	t.Helper()
	gw := &workloadapi.GatewayAddress{
		Destination:   &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: netip.MustParseAddr("10.96.0.50").AsSlice()}},
		HboneMtlsPort: 15008,
	}
	res := []*delta.Resource{
		addr(t, waypointKey, &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
			Name: "wp", Namespace: "demo", Hostname: "wp.demo.svc.cluster.local",
			Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.50").AsSlice()}},
			Ports:     []*workloadapi.Port{{ServicePort: 15008, TargetPort: 15008}},
		}}}),
		addr(t, "demo/reviews.demo.svc.cluster.local", &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
			Name: "reviews", Namespace: "demo", Hostname: "reviews.demo.svc.cluster.local", Waypoint: gw,
			Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.20").AsSlice()}},
			Ports:     []*workloadapi.Port{{ServicePort: 9080, TargetPort: 9080}},
		}}}),
		addr(t, "pod-with-waypoint", &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
			Uid: "pod-with-waypoint", Name: "p", Namespace: "demo", ServiceAccount: "p", Waypoint: gw,
			TunnelProtocol: workloadapi.TunnelProtocol_HBONE, Status: workloadapi.WorkloadStatus_HEALTHY,
			Addresses: [][]byte{netip.MustParseAddr("10.20.3.2").AsSlice()},
		}}}),
	}
	for _, w := range instances {
		res = append(res, addr(t, w.GetWorkload().Uid, w))
	}
	s := state.New()
	if err := s.Apply(state.TypeAddress, res, nil); err != nil {
		t.Fatal(err)
	}
	return &Router{Store: s}
}

func waypointInstance(uid, ip string, status workloadapi.WorkloadStatus) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: uid, Name: uid, Namespace: "demo", ServiceAccount: "wp", Status: status,
		Addresses: [][]byte{netip.MustParseAddr(ip).AsSlice()},
		Services:  map[string]*workloadapi.PortList{waypointKey: {Ports: []*workloadapi.Port{{ServicePort: 15008, TargetPort: 15008}}}},
	}}}
}

func TestRouteThroughWaypoint(t *testing.T) {
	r := waypointStore(t,
		waypointInstance("wp-1", "10.20.9.1", workloadapi.WorkloadStatus_HEALTHY),
		waypointInstance("wp-2", "10.20.9.2", workloadapi.WorkloadStatus_HEALTHY),
		waypointInstance("wp-3", "10.20.9.3", workloadapi.WorkloadStatus_UNHEALTHY),
	)
	for _, tc := range []struct {
		name, dst string
		service   bool
	}{
		{"service VIP keeps the VIP as authority", "10.96.0.20:9080", true},
		{"workload keeps the pod address as authority", "10.20.3.2:8080", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]int{}
			for range 4 {
				rt, err := r.Route(netip.MustParseAddrPort(tc.dst))
				if err != nil {
					t.Fatal(err)
				}
				if !rt.HBONE || !rt.Waypoint || rt.Target.String() != tc.dst || rt.Gateway.Port() != 15008 {
					t.Fatalf("route = %+v", rt)
				}
				if rt.Gateway.Addr() != rt.Workload.IPs[0] || rt.Identity.ServiceAccount != "wp" {
					t.Fatalf("route does not go to a waypoint instance with its identity: %+v", rt)
				}
				if (rt.Service != nil) != tc.service {
					t.Fatalf("route service = %v, want set: %v", rt.Service, tc.service)
				}
				seen[rt.Workload.Uid]++
			}
			if seen["wp-1"] != 2 || seen["wp-2"] != 2 {
				t.Fatalf("instances used %v, want wp-1 and wp-2 twice each (wp-3 is unhealthy)", seen)
			}
		})
	}
}

func TestRouteWaypointUnavailableFailsClosed(t *testing.T) {
	r := waypointStore(t, waypointInstance("wp-1", "10.20.9.1", workloadapi.WorkloadStatus_UNHEALTHY))
	for _, dst := range []string{"10.96.0.20:9080", "10.20.3.2:8080"} {
		rt, err := r.Route(netip.MustParseAddrPort(dst))
		if !errors.Is(err, ErrNoWaypoint) {
			t.Fatalf("route %s = %+v, %v; want ErrNoWaypoint", dst, rt, err)
		}
	}
}
