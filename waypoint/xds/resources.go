package xds

import (
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/waypoint/config"
)

// resourceName is a decoded resource's own name (a ClusterLoadAssignment's
// cluster_name).
func resourceName(m proto.Message) string {
	switch v := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return v.GetClusterName()
	case interface{ GetName() string }:
		return v.GetName()
	}
	return ""
}

// apply returns a copy of res with one response's upserts and removals.
func apply(res *config.Resources, resp *discoveryv3.DeltaDiscoveryResponse) (*config.Resources, error) {
	next := res.Clone()
	t := resp.GetTypeUrl()
	for _, r := range resp.GetResources() {
		if err := upsert(next, t, r.GetName(), r.GetResource()); err != nil {
			return nil, err
		}
	}
	for _, n := range resp.GetRemovedResources() {
		switch t {
		case resourcev3.ListenerType:
			delete(next.Listeners, n)
		case resourcev3.RouteType:
			delete(next.Routes, n)
		case resourcev3.ClusterType:
			delete(next.Clusters, n)
		case resourcev3.EndpointType:
			delete(next.Endpoints, n)
		case resourcev3.SecretType:
			delete(next.Secrets, n)
		default:
			return nil, fmt.Errorf("unsubscribed type %q", t)
		}
	}
	return next, nil
}

func upsert(res *config.Resources, t, name string, a *anypb.Any) error {
	if a == nil {
		return fmt.Errorf("resource %q: no payload", name)
	}
	if a.GetTypeUrl() != t {
		return fmt.Errorf("resource %q: type %q in a %q response", name, a.GetTypeUrl(), t)
	}
	var m proto.Message
	switch t {
	case resourcev3.ListenerType:
		m = &listenerv3.Listener{}
	case resourcev3.RouteType:
		m = &routev3.RouteConfiguration{}
	case resourcev3.ClusterType:
		m = &clusterv3.Cluster{}
	case resourcev3.EndpointType:
		m = &endpointv3.ClusterLoadAssignment{}
	case resourcev3.SecretType:
		m = &tlsv3.Secret{}
	default:
		return fmt.Errorf("unsubscribed type %q", t)
	}
	if err := a.UnmarshalTo(m); err != nil {
		return fmt.Errorf("decode %q: %w", name, err)
	}
	if got := resourceName(m); got != name {
		return fmt.Errorf("resource %q: payload names %q", name, resourceName(m))
	}
	switch v := m.(type) {
	case *listenerv3.Listener:
		res.Listeners[name] = v
	case *routev3.RouteConfiguration:
		res.Routes[name] = v
	case *clusterv3.Cluster:
		res.Clusters[name] = v
	case *endpointv3.ClusterLoadAssignment:
		res.Endpoints[name] = v
	case *tlsv3.Secret:
		res.Secrets[name] = v
	}
	return nil
}

// subscriptions tracks, per stream, what was requested for each type.
type subscriptions struct {
	started map[string]bool
	names   map[string]map[string]bool // by-name types only
}

func newSubscriptions() *subscriptions {
	return &subscriptions{started: map[string]bool{}, names: map[string]map[string]bool{}}
}

// initial builds the first request of a type on a stream: a wildcard for listeners and
// clusters, the wanted names otherwise (no request while none is wanted: an empty first
// request would mean wildcard). Versions held are reported so the server sends only
// changes.
func (s *subscriptions) initial(t string, want []string, held map[string]string, node *corev3.Node) *discoveryv3.DeltaDiscoveryRequest {
	if !wildcard(t) && len(want) == 0 {
		return nil
	}
	s.started[t] = true
	req := &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: t, InitialResourceVersions: maps.Clone(held)}
	if wildcard(t) {
		req.ResourceNamesSubscribe = []string{"*"}
		return req
	}
	set := map[string]bool{}
	for _, n := range want {
		set[n] = true
	}
	s.names[t] = set
	req.ResourceNamesSubscribe = want
	versions := map[string]string{}
	for n, v := range held {
		if set[n] {
			versions[n] = v
		}
	}
	req.InitialResourceVersions = versions
	return req
}

// update builds a request changing a by-name type's subscription, or nil.
func (s *subscriptions) update(t string, want []string, held map[string]string, node *corev3.Node) *discoveryv3.DeltaDiscoveryRequest {
	if wildcard(t) {
		return nil
	}
	if !s.started[t] {
		return s.initial(t, want, held, node)
	}
	cur := s.names[t]
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
	set := map[string]bool{}
	for _, n := range want {
		set[n] = true
		if !cur[n] {
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(cur)) {
		if !set[n] {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	s.names[t] = set
	return req
}
