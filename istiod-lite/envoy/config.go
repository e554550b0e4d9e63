package envoy

import (
	"cmp"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// Config is one waypoint's complete Envoy configuration. Every slice is sorted by
// resource name. Secrets is empty when SecretsOmitted is true (GenerateConfig: the
// configuration alone, e.g. for golden files, or to add per-stream secrets later with
// WithSecrets); Validate then does not require the SDS names to resolve.
type Config struct {
	Listeners      []*listenerv3.Listener
	Routes         []*routev3.RouteConfiguration
	Clusters       []*clusterv3.Cluster
	Endpoints      []*endpointv3.ClusterLoadAssignment
	Secrets        []*tlsv3.Secret
	SecretsOmitted bool
}

// WithSecrets returns a copy of c (sharing its listener, route, cluster and endpoint
// messages, which must not be modified) holding the SDS secrets built from s, validated.
// Errors wrap ErrInvalidSecrets or ErrInvalidConfig.
func (c *Config) WithSecrets(s Secrets) (*Config, error) {
	secrets, err := SecretResources(s)
	if err != nil {
		return nil, fmt.Errorf("add secrets: %w", err)
	}
	out := *c
	out.Secrets = secrets
	out.SecretsOmitted = false
	if err := Validate(&out); err != nil {
		return nil, fmt.Errorf("add secrets: %w", err)
	}
	return &out, nil
}

// Resources returns the resources keyed by go-control-plane type URL
// (resourcev3.ListenerType, RouteType, ClusterType, EndpointType and, unless
// SecretsOmitted, SecretType), each list sorted by name.
func (c *Config) Resources() map[resourcev3.Type][]types.Resource {
	out := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: asResources(c.Listeners),
		resourcev3.RouteType:    asResources(c.Routes),
		resourcev3.ClusterType:  asResources(c.Clusters),
		resourcev3.EndpointType: asResources(c.Endpoints),
	}
	if !c.SecretsOmitted {
		out[resourcev3.SecretType] = asResources(c.Secrets)
	}
	return out
}

// Snapshot returns a go-control-plane cache snapshot of c at version, for a
// SnapshotCache (cache.SetSnapshot). It checks the snapshot's own consistency (every
// RDS/EDS name referenced exactly once) after Validate; errors wrap ErrInvalidConfig.
func (c *Config) Snapshot(version string) (*cachev3.Snapshot, error) {
	if err := Validate(c); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s, err := cachev3.NewSnapshot(version, c.Resources())
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := s.Consistent(); err != nil {
		return nil, fmt.Errorf("snapshot: %w: %w", ErrInvalidConfig, err)
	}
	return s, nil
}

// Marshal returns the deterministic wire encoding of every resource in c, in the order
// listeners, routes, clusters, endpoints, secrets, each length-prefixed by its type URL;
// equal configurations give equal bytes. It is meant for change detection and tests.
func (c *Config) Marshal() ([]byte, error) {
	opts := proto.MarshalOptions{Deterministic: true}
	var out []byte
	all := c.Resources()
	for _, typ := range []resourcev3.Type{resourcev3.ListenerType, resourcev3.RouteType,
		resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType} {
		for _, r := range all[typ] {
			out = append(out, typ...)
			b, err := opts.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("marshal %s %q: %w", typ, cachev3.GetResourceName(r), err)
			}
			out = fmt.Appendf(out, "|%d|", len(b))
			out = append(out, b...)
		}
	}
	return out, nil
}

func asResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, r := range in {
		out[i] = r
	}
	return out
}

type named interface{ GetName() string }

func sortByName[T named](s []T) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) })
}

func (c *Config) sort() {
	sortByName(c.Listeners)
	sortByName(c.Routes)
	sortByName(c.Clusters)
	slices.SortStableFunc(c.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.GetClusterName(), b.GetClusterName())
	})
	sortByName(c.Secrets)
}
