package envoytest

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// Snapshot packs res into a go-control-plane snapshot of the given version, for tests
// that serve it from a SnapshotCache.
func Snapshot(version string, res *config.Resources) (*cachev3.Snapshot, error) {
	m := map[resourcev3.Type][]types.Resource{}
	for _, r := range res.Listeners {
		m[resourcev3.ListenerType] = append(m[resourcev3.ListenerType], r)
	}
	for _, r := range res.Routes {
		m[resourcev3.RouteType] = append(m[resourcev3.RouteType], r)
	}
	for _, r := range res.Clusters {
		m[resourcev3.ClusterType] = append(m[resourcev3.ClusterType], r)
	}
	for _, r := range res.Endpoints {
		m[resourcev3.EndpointType] = append(m[resourcev3.EndpointType], r)
	}
	for _, r := range res.Secrets {
		m[resourcev3.SecretType] = append(m[resourcev3.SecretType], r)
	}
	snap, err := cachev3.NewSnapshot(version, m)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
}
