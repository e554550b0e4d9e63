package proxy

import (
	"errors"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

const svcKey = "demo/server.demo.svc.cluster.local"

func addr(t *testing.T, name string, a *workloadapi.Address) *delta.Resource {
	t.Helper()
	anyv, err := anypb.New(a)
	if err != nil {
		t.Fatal(err)
	}
	return &delta.Resource{Name: name, Resource: anyv}
}

func wl(uid, ip string, proto workloadapi.TunnelProtocol, status workloadapi.WorkloadStatus) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: uid, Name: uid, Namespace: "demo", ServiceAccount: "server", TunnelProtocol: proto, Status: status,
		Addresses: [][]byte{netip.MustParseAddr(ip).AsSlice()},
		Services:  map[string]*workloadapi.PortList{svcKey: {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}},
	}}}
}

func newRouter(t *testing.T, ws ...*workloadapi.Address) *Router {
	t.Helper()
	s := state.New()
	res := []*delta.Resource{addr(t, svcKey, &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
		Name: "server", Namespace: "demo", Hostname: "server.demo.svc.cluster.local",
		Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.10").AsSlice()}},
		Ports:     []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}},
	}}})}
	for _, w := range ws {
		res = append(res, addr(t, w.GetWorkload().Uid, w))
	}
	if err := s.Apply(state.TypeAddress, res, nil); err != nil {
		t.Fatal(err)
	}
	return &Router{Store: s}
}

func TestRouteServiceRoundRobinsHealthyEndpoints(t *testing.T) {
	r := newRouter(t,
		wl("a", "10.20.1.2", workloadapi.TunnelProtocol_HBONE, workloadapi.WorkloadStatus_HEALTHY),
		wl("b", "10.20.2.2", workloadapi.TunnelProtocol_HBONE, workloadapi.WorkloadStatus_HEALTHY),
		wl("c", "10.20.2.3", workloadapi.TunnelProtocol_HBONE, workloadapi.WorkloadStatus_UNHEALTHY),
	)
	seen := map[string]int{}
	for range 10 {
		rt, err := r.Route(netip.MustParseAddrPort("10.96.0.10:80"))
		if err != nil {
			t.Fatal(err)
		}
		if !rt.HBONE || rt.Target.Port() != 8080 || rt.Gateway.Port() != 15008 || rt.Gateway.Addr() != rt.Target.Addr() {
			t.Fatalf("route = %+v", rt)
		}
		if rt.Service == nil || rt.Identity.ServiceAccount != "server" {
			t.Fatalf("route lacks service or identity: %+v", rt)
		}
		seen[rt.Workload.Uid]++
	}
	if seen["a"] != 5 || seen["b"] != 5 || seen["c"] != 0 {
		t.Fatalf("spread = %v, want a=5 b=5 c=0", seen)
	}
}

func TestRouteKinds(t *testing.T) {
	r := newRouter(t,
		wl("mesh", "10.20.1.2", workloadapi.TunnelProtocol_HBONE, workloadapi.WorkloadStatus_HEALTHY),
		wl("plain", "10.20.1.3", workloadapi.TunnelProtocol_NONE, workloadapi.WorkloadStatus_HEALTHY),
	)
	for _, tc := range []struct {
		name  string
		dst   string
		hbone bool
	}{
		{"enrolled workload", "10.20.1.2:9000", true},
		{"non-enrolled workload passes through", "10.20.1.3:9000", false},
		{"unknown address passes through", "192.0.2.1:443", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := r.Route(netip.MustParseAddrPort(tc.dst))
			if err != nil {
				t.Fatal(err)
			}
			if rt.HBONE != tc.hbone || rt.Target.String() != tc.dst {
				t.Fatalf("route = %+v", rt)
			}
		})
	}
}

func TestRouteServiceWithoutEndpoints(t *testing.T) {
	r := newRouter(t)
	if _, err := r.Route(netip.MustParseAddrPort("10.96.0.10:80")); !errors.Is(err, ErrNoHealthyEndpoint) {
		t.Fatalf("err = %v", err)
	}
}
