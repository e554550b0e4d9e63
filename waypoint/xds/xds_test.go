package xds

import (
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/waypoint/config"
)

func TestSubscriptions(t *testing.T) {
	s := newSubscriptions()
	if req := s.initial(resourcev3.ListenerType, nil, map[string]string{"a": "1"}, nil); req == nil ||
		!slices.Equal(req.ResourceNamesSubscribe, []string{"*"}) || req.InitialResourceVersions["a"] != "1" {
		t.Fatalf("wildcard initial = %v", req)
	}
	if req := s.initial(resourcev3.RouteType, nil, nil, nil); req != nil {
		t.Fatalf("empty by-name initial sent %v (would mean wildcard)", req)
	}
	tests := []struct {
		name      string
		want      []string
		sub, drop []string
		none      bool
	}{
		{name: "first names", want: []string{"r1", "r2"}, sub: []string{"r1", "r2"}},
		{name: "unchanged", want: []string{"r1", "r2"}, none: true},
		{name: "swap", want: []string{"r2", "r3"}, sub: []string{"r3"}, drop: []string{"r1"}},
		{name: "all gone", want: nil, drop: []string{"r2", "r3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := s.update(resourcev3.RouteType, tc.want, map[string]string{"r1": "v"}, nil)
			if tc.none {
				if req != nil {
					t.Fatalf("update = %v, want none", req)
				}
				return
			}
			if req == nil || !slices.Equal(req.ResourceNamesSubscribe, tc.sub) || !slices.Equal(req.ResourceNamesUnsubscribe, tc.drop) {
				t.Fatalf("update = %v, want +%v -%v", req, tc.sub, tc.drop)
			}
		})
	}
}

func TestNodeFor(t *testing.T) {
	n := NodeFor(NodeInfo{PodName: "wp-1", PodNamespace: "demo", InstanceIP: "10.0.0.2", ServiceAccount: "waypoint", GatewayName: "waypoint", ClusterID: "Kubernetes"})
	if n.Id != "router~10.0.0.2~wp-1.demo~demo.svc.cluster.local" || n.Cluster != "waypoint.demo" {
		t.Fatalf("node = %v", n)
	}
	for k, want := range map[string]string{"NAMESPACE": "demo", "SERVICE_ACCOUNT": "waypoint", "GATEWAY_NAME": "waypoint", "INSTANCE_IPS": "10.0.0.2", "CLUSTER_ID": "Kubernetes"} {
		if got := n.Metadata.Fields[k].GetStringValue(); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
}

// FuzzApply feeds arbitrary payloads as resources of each type: apply returns an error
// or a state, never panics.
func FuzzApply(f *testing.F) {
	f.Add(uint8(0), "connect_terminate", []byte{0x0a, 0x03, 'a', 'b', 'c'})
	f.Add(uint8(3), "outbound|80||a", []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, name string, payload []byte) {
		tu := Types[int(typ)%len(Types)]
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: tu, Resources: []*discoveryv3.Resource{{
			Name: name, Resource: &anypb.Any{TypeUrl: tu, Value: payload},
		}}, RemovedResources: []string{name + "x"}}
		_, _ = apply(config.NewResources(), resp)
	})
}
