// Package envoytest builds waypoint xDS resources in exactly the shape istiod-lite
// generates (notes/issue5.md section 2), for the engine's tests: fixed listeners and
// clusters, one main_internal filter chain per service port, its route configuration,
// outbound clusters with tunnel endpoints, and the two secrets.
package envoytest

import (
	"fmt"
	"sort"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/config"
)

// Service is one service port the waypoint serves.
type Service struct {
	FQDN string
	VIP  string
	Port uint32
	TCP  bool // tcp_proxy chain instead of HTTP
	// Routes of the RouteConfiguration; nil: the default route to Backends[0].
	Routes []*routev3.Route
	// RBAC filters, in order.
	RBAC []*rbacv3filter.RBAC
	// Backends are the outbound clusters of this service (subset "" first).
	Backends []Backend
}

// Backend is one outbound cluster.
type Backend struct {
	Subset          string
	H2              bool
	LB              clusterv3.Cluster_LbPolicy
	CircuitBreakers *clusterv3.CircuitBreakers
	Outlier         *clusterv3.OutlierDetection
	Endpoints       []Endpoint
}

// Endpoint is one pod: tunnel.destination and tunnel.address.
type Endpoint struct {
	Destination string
	Address     string
}

// ClusterName is "outbound|<port>|<subset>|<fqdn>" (waypointxds.OutboundClusterName).
func ClusterName(port uint32, subset, fqdn string) string {
	return waypointxds.OutboundClusterName(port, subset, fqdn)
}

// ChainName is "inbound-vip|<port>|<http|tcp>|<fqdn>" (waypointxds.ChainName).
func ChainName(s Service) string {
	return waypointxds.ChainName(s.FQDN, s.Port, !s.TCP)
}

// Resources builds the full resource set for trust domain td, the waypoint's PEM
// certificate chain and key, the root PEM, and services.
func Resources(td string, certPEM, keyPEM, rootPEM []byte, svcs ...Service) *config.Resources {
	res := config.NewResources()
	res.Listeners[waypointxds.ListenerConnectTerminate] = waypointxds.ConnectTerminate(td)
	res.Listeners[waypointxds.ListenerConnectOriginate] = waypointxds.ConnectOriginate()
	res.Clusters[waypointxds.ClusterMainInternal] = waypointxds.MainInternalCluster()
	res.Clusters[waypointxds.ClusterConnectOriginate] = waypointxds.ConnectOriginateCluster(td)
	sort.Slice(svcs, func(i, j int) bool { return ChainName(svcs[i]) < ChainName(svcs[j]) })
	var chains []*listenerv3.FilterChain
	for _, s := range svcs {
		chains = append(chains, chain(s))
		if !s.TCP {
			res.Routes[ChainName(s)] = RouteConfig(s)
		}
		for _, b := range s.Backends {
			name := ClusterName(s.Port, b.Subset, s.FQDN)
			res.Clusters[name] = Cluster(name, b)
			res.Endpoints[name] = Endpoints(name, b.Endpoints)
		}
	}
	res.Listeners[waypointxds.ListenerMainInternal] = waypointxds.MainInternal(chains)
	res.Secrets[waypointxds.SecretDefault] = waypointxds.DefaultSecret(certPEM, keyPEM)
	res.Secrets[waypointxds.SecretRootCA] = waypointxds.RootCASecret(rootPEM)
	return res
}

func chain(s Service) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{
		Name: ChainName(s),
		FilterChainMatch: &listenerv3.FilterChainMatch{
			DestinationPort: wrapperspb.UInt32(s.Port),
			PrefixRanges:    []*corev3.CidrRange{{AddressPrefix: s.VIP, PrefixLen: wrapperspb.UInt32(32)}},
		},
	}
	if s.TCP {
		fc.Filters = []*listenerv3.Filter{waypointxds.NetworkFilter(waypointxds.FilterTCPProxy, &tcpproxyv3.TcpProxy{
			StatPrefix: ChainName(s), ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterName(s.Port, "", s.FQDN)},
		})}
		return fc
	}
	var filters []*hcmv3.HttpFilter
	for _, r := range s.RBAC {
		filters = append(filters, waypointxds.HTTPFilter(waypointxds.FilterRBAC, r))
	}
	filters = append(filters,
		waypointxds.HTTPFilter(waypointxds.FilterFault, &faultv3.HTTPFault{}),
		waypointxds.HTTPFilter(waypointxds.FilterRouter, &routerv3.Router{}))
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: ChainName(s),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: ChainName(s), ConfigSource: waypointxds.ADSConfigSource(),
		}},
		HttpFilters: filters,
		AccessLog:   []*accesslogv3.AccessLog{waypointxds.StdoutAccessLog()},
	}
	fc.Filters = []*listenerv3.Filter{waypointxds.NetworkFilter(waypointxds.FilterHTTPConnectionManager, hcm)}
	return fc
}

// RouteConfig is the RouteConfiguration of an HTTP service.
func RouteConfig(s Service) *routev3.RouteConfiguration {
	routes := s.Routes
	if routes == nil {
		routes = []*routev3.Route{{
			Name:  "default",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterName(s.Port, "", s.FQDN)},
				Timeout:          durationpb.New(0),
			}},
		}}
	}
	return &routev3.RouteConfiguration{
		Name: ChainName(s),
		VirtualHosts: []*routev3.VirtualHost{{
			Name: fmt.Sprintf("%s:%d", s.FQDN, s.Port), Domains: []string{"*"}, Routes: routes,
		}},
	}
}

// Cluster is an outbound| cluster.
func Cluster(name string, b Backend) *clusterv3.Cluster {
	var h2 *corev3.Http2ProtocolOptions
	if b.H2 {
		h2 = &corev3.Http2ProtocolOptions{}
	}
	return &clusterv3.Cluster{
		Name:                          name,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: waypointxds.ADSConfigSource()},
		ConnectTimeout:                durationpb.New(waypointxds.ConnectTimeout),
		LbPolicy:                      b.LB,
		CircuitBreakers:               b.CircuitBreakers,
		OutlierDetection:              b.Outlier,
		TypedExtensionProtocolOptions: waypointxds.ProtocolOptions(h2),
		TransportSocket:               waypointxds.InternalUpstreamSocket(),
	}
}

// Endpoints is the ClusterLoadAssignment of a cluster.
func Endpoints(name string, eps []Endpoint) *endpointv3.ClusterLoadAssignment {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, e := range eps {
		lle.LbEndpoints = append(lle.LbEndpoints, waypointxds.TunnelEndpoint(e.Destination, e.Address))
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}}
}
