package state

import (
	"errors"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
)

func resource(t *testing.T, name string, a *workloadapi.Address) *delta.Resource {
	t.Helper()
	anyv, err := anypb.New(a)
	if err != nil {
		t.Fatal(err)
	}
	return &delta.Resource{Name: name, Resource: anyv}
}

func workload(uid, ip string, svcKey string) *workloadapi.Address {
	w := &workloadapi.Workload{
		Uid: uid, Name: uid, Namespace: "demo", ServiceAccount: "server",
		Addresses: [][]byte{netip.MustParseAddr(ip).AsSlice()}, TunnelProtocol: workloadapi.TunnelProtocol_HBONE,
	}
	if svcKey != "" {
		w.Services = map[string]*workloadapi.PortList{svcKey: {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}}
	}
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}}
}

func service(vip string) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
		Name: "server", Namespace: "demo", Hostname: "server.demo.svc.cluster.local",
		Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr(vip).AsSlice()}},
		Ports:     []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}},
	}}}
}

func TestApplyAndLookups(t *testing.T) {
	s := New()
	const key = "demo/server.demo.svc.cluster.local"
	err := s.Apply(TypeAddress, []*delta.Resource{
		resource(t, "c//Pod/demo/b", workload("c//Pod/demo/b", "10.0.0.2", key)),
		resource(t, "c//Pod/demo/a", workload("c//Pod/demo/a", "10.0.0.1", key)),
		resource(t, key, service("10.96.0.10")),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.WorkloadByIP(netip.MustParseAddr("10.0.0.2")); w == nil || w.Uid != "c//Pod/demo/b" {
		t.Fatalf("WorkloadByIP = %v", w)
	}
	if id := s.WorkloadByUID("c//Pod/demo/a").Identity().String(); id != "spiffe://cluster.local/ns/demo/sa/server" {
		t.Fatalf("identity = %s", id)
	}
	svc := s.ServiceByVIP(netip.MustParseAddr("10.96.0.10"))
	if svc == nil || svc.Key != key {
		t.Fatalf("ServiceByVIP = %v", svc)
	}
	eps := s.Endpoints(key)
	if len(eps) != 2 || eps[0].Uid != "c//Pod/demo/a" {
		t.Fatalf("endpoints = %v", eps)
	}
	if err := s.Apply(TypeAddress, nil, []string{"c//Pod/demo/a"}); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Endpoints(key)); got != 1 {
		t.Fatalf("after removal: %d endpoints", got)
	}
}

func TestApplyRejectsBadResourceAtomically(t *testing.T) {
	s := New()
	bad, _ := anypb.New(wrapperspb.String("not an address"))
	err := s.Apply(TypeAddress, []*delta.Resource{
		resource(t, "ok", workload("ok", "10.0.0.9", "")),
		{Name: "bad", Resource: bad},
	}, nil)
	if !errors.Is(err, ErrBadResource) {
		t.Fatalf("err = %v, want ErrBadResource", err)
	}
	if s.WorkloadByUID("ok") != nil {
		t.Fatal("part of a rejected response was applied")
	}
	if err := s.Apply(TypeAddress, []*delta.Resource{{Name: "empty"}}, nil); !errors.Is(err, ErrBadResource) {
		t.Fatalf("empty resource: %v", err)
	}
}
