package envoytest

import (
	"encoding/json"
	"os"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// GoldenGlob locates istiod-lite's generator golden files from the repository root.
// Tests read them as data (the waypoint links no control-plane code) to prove the
// engine accepts, and serves, what the generator emits.
const GoldenGlob = "istiod-lite/envoy/testdata/*.golden.yaml"

// ReadGolden parses a golden YAML document {listeners, routes, clusters, endpoints} of
// protojson resources.
func ReadGolden(path string) (*config.Resources, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	var doc map[string][]json.RawMessage
	if err := json.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	res := config.NewResources()
	for _, raw := range doc["listeners"] {
		var m listenerv3.Listener
		if err := protojson.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		res.Listeners[m.GetName()] = &m
	}
	for _, raw := range doc["routes"] {
		var m routev3.RouteConfiguration
		if err := protojson.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		res.Routes[m.GetName()] = &m
	}
	for _, raw := range doc["clusters"] {
		var m clusterv3.Cluster
		if err := protojson.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		res.Clusters[m.GetName()] = &m
	}
	for _, raw := range doc["endpoints"] {
		var m endpointv3.ClusterLoadAssignment
		if err := protojson.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		res.Endpoints[m.GetClusterName()] = &m
	}
	return res, nil
}
