package config_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

// FuzzBuild feeds arbitrary main_internal listeners, clusters and endpoints into an
// otherwise valid state: Build must return a Config or an error, never panic.
func FuzzBuild(f *testing.F) {
	res := testResources(f)
	cname := envoytest.ClusterName(9080, "", fqdn)
	for _, m := range []proto.Message{res.Listeners[waypointxds.ListenerMainInternal], res.Clusters[cname], res.Endpoints[cname]} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), b)
		f.Add(uint8(1), b)
		f.Add(uint8(2), b)
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		r := res.Clone()
		switch kind % 3 {
		case 0:
			var l listenerv3.Listener
			if proto.Unmarshal(b, &l) != nil {
				return
			}
			r.Listeners[waypointxds.ListenerMainInternal] = &l
		case 1:
			var c clusterv3.Cluster
			if proto.Unmarshal(b, &c) != nil {
				return
			}
			r.Clusters[cname] = &c
		case 2:
			var cla endpointv3.ClusterLoadAssignment
			if proto.Unmarshal(b, &cla) != nil {
				return
			}
			r.Endpoints[cname] = &cla
		}
		_, _ = config.Build(r, nil, config.Options{TrustDomain: "cluster.local"})
	})
}
