package xds

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
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

// apply returns a copy of res with one response's upserts and removals of type t.
func apply(res *config.Resources, t string, upserts []*discoveryv3.Resource, removed []string) (*config.Resources, error) {
	next := res.Clone()
	for _, r := range upserts {
		if err := upsert(next, t, r.GetName(), r.GetResource()); err != nil {
			return nil, err
		}
	}
	if !drop(next, t, removed) {
		return nil, fmt.Errorf("unsubscribed type %q", t)
	}
	return next, nil
}

// drop deletes names of type t from res; false for a type the waypoint does not use.
func drop(res *config.Resources, t string, names []string) bool {
	var m interface{ delete(string) }
	switch t {
	case resourcev3.ListenerType:
		m = deleter[*listenerv3.Listener](res.Listeners)
	case resourcev3.RouteType:
		m = deleter[*routev3.RouteConfiguration](res.Routes)
	case resourcev3.ClusterType:
		m = deleter[*clusterv3.Cluster](res.Clusters)
	case resourcev3.EndpointType:
		m = deleter[*endpointv3.ClusterLoadAssignment](res.Endpoints)
	case resourcev3.SecretType:
		m = deleter[*tlsv3.Secret](res.Secrets)
	default:
		return false
	}
	for _, n := range names {
		m.delete(n)
	}
	return true
}

// deleter is a resource map of one type.
type deleter[T any] map[string]T

func (d deleter[T]) delete(name string) { delete(d, name) }

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
