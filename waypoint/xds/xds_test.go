package xds

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/waypoint/config"
)

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
		upserts := []*discoveryv3.Resource{{Name: name, Resource: &anypb.Any{TypeUrl: tu, Value: payload}}}
		_, _ = apply(config.NewResources(), tu, upserts, []string{name + "x"})
	})
}
