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
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

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

// ClusterName is "outbound|<port>|<subset>|<fqdn>".
func ClusterName(port uint32, subset, fqdn string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, fqdn)
}

// ChainName is "inbound-vip|<port>|<http|tcp>|<fqdn>".
func ChainName(s Service) string {
	kind := "http"
	if s.TCP {
		kind = "tcp"
	}
	return fmt.Sprintf("inbound-vip|%d|%s|%s", s.Port, kind, s.FQDN)
}

func anyOf(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// Resources builds the full resource set for trust domain td, the waypoint's PEM
// certificate chain and key, the root PEM, and services.
func Resources(td string, certPEM, keyPEM, rootPEM []byte, svcs ...Service) *config.Resources {
	res := config.NewResources()
	res.Listeners[config.ListenerConnectTerminate] = config.ConnectTerminate(td)
	res.Listeners[config.ListenerConnectOriginate] = config.ConnectOriginate()
	res.Clusters[config.ClusterMainInternal] = config.MainInternalCluster()
	res.Clusters[config.ClusterConnectOriginate] = config.ConnectOriginateCluster(td)
	sort.Slice(svcs, func(i, j int) bool { return ChainName(svcs[i]) < ChainName(svcs[j]) })
	mi := &listenerv3.Listener{
		Name:              config.ListenerMainInternal,
		ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: config.FilterOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(&origdstv3.OriginalDst{})}}},
	}
	for _, s := range svcs {
		mi.FilterChains = append(mi.FilterChains, chain(s))
		if !s.TCP {
			res.Routes[ChainName(s)] = RouteConfig(s)
		}
		for _, b := range s.Backends {
			name := ClusterName(s.Port, b.Subset, s.FQDN)
			res.Clusters[name] = Cluster(name, b)
			res.Endpoints[name] = Endpoints(name, b.Endpoints)
		}
	}
	res.Listeners[config.ListenerMainInternal] = mi
	res.Secrets[config.SecretDefault] = &tlsv3.Secret{Name: config.SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
	res.Secrets[config.SecretRootCA] = &tlsv3.Secret{Name: config.SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: rootPEM}},
	}}}
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
		fc.Filters = []*listenerv3.Filter{{Name: config.FilterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
			StatPrefix: ChainName(s), ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterName(s.Port, "", s.FQDN)},
		})}}}
		return fc
	}
	var filters []*hcmv3.HttpFilter
	for _, r := range s.RBAC {
		filters = append(filters, &hcmv3.HttpFilter{Name: config.FilterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(r)}})
	}
	filters = append(filters,
		&hcmv3.HttpFilter{Name: config.FilterFault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(&faultv3.HTTPFault{})}},
		&hcmv3.HttpFilter{Name: config.FilterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(&routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: ChainName(s),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: ChainName(s), ConfigSource: config.ADSConfigSource(),
		}},
		HttpFilters: filters,
		AccessLog:   []*accesslogv3.AccessLog{AccessLog()},
	}
	fc.Filters = []*listenerv3.Filter{{Name: config.FilterHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(hcm)}}}
	return fc
}

// AccessLog is the stdout JSON access log of every HTTP chain.
func AccessLog() *accesslogv3.AccessLog {
	keys := map[string]string{
		"start_time": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
		"bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
		"upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%", "authority": "%REQ(:AUTHORITY)%",
		"user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%",
		"downstream_peer": "%FILTER_STATE(io.istio.peer_principal:PLAIN)%", "route_name": "%ROUTE_NAME%",
	}
	fields := map[string]*structpb.Value{}
	for k, v := range keys {
		fields[k] = structpb.NewStringValue(v)
	}
	return &accesslogv3.AccessLog{Name: config.AccessLogStdout, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(&streamv3.StdoutAccessLog{
		AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}},
		}},
	})}}
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
	hc := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
		HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
	}}
	if b.H2 {
		hc.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: config.ADSConfigSource()},
		ConnectTimeout:       durationpb.New(config.ConnectTimeout),
		LbPolicy:             b.LB,
		CircuitBreakers:      b.CircuitBreakers,
		OutlierDetection:     b.Outlier,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{config.HTTPProtocolOptions: anyOf(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: hc},
		})},
		TransportSocket: config.InternalUpstreamSocket(),
	}
}

// Endpoints is the ClusterLoadAssignment of a cluster.
func Endpoints(name string, eps []Endpoint) *endpointv3.ClusterLoadAssignment {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, e := range eps {
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
					AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: config.ListenerConnectOriginate},
					EndpointId:           e.Destination,
				}}},
			}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"tunnel": {Fields: map[string]*structpb.Value{
				"destination": structpb.NewStringValue(e.Destination),
				"address":     structpb.NewStringValue(e.Address),
			}}}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}}
}
