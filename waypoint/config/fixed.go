package config

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	sfscommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	sfsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of the fixed resources (issue5.md section 2).
const (
	ListenerConnectTerminate = "connect_terminate"
	ListenerMainInternal     = "main_internal"
	ListenerConnectOriginate = "connect_originate"
	ClusterMainInternal      = "main_internal"
	ClusterConnectOriginate  = "connect_originate"
	SecretDefault            = "default"
	SecretRootCA             = "ROOTCA"
	// HBONEPort is where connect_terminate listens (wire.md).
	HBONEPort = 15008
	// Window sizes of the HBONE HTTP/2 codec in both directions.
	StreamWindow     = 4194304
	ConnectionWindow = 16777216
	// ConnectTimeout is every cluster's connect_timeout.
	ConnectTimeout = 10 * time.Second
)

// Filter and extension names used by the accepted configuration.
const (
	FilterHCM            = "envoy.filters.network.http_connection_manager"
	FilterTCPProxy       = "envoy.filters.network.tcp_proxy"
	FilterRBAC           = "envoy.filters.http.rbac"
	FilterFault          = "envoy.filters.http.fault"
	FilterRouter         = "envoy.filters.http.router"
	FilterSetFilterState = "envoy.filters.http.set_filter_state"
	FilterOriginalDst    = "envoy.filters.listener.original_dst"
	SocketTLS            = "envoy.transport_sockets.tls"
	SocketInternal       = "envoy.transport_sockets.internal_upstream"
	SocketRawBuffer      = "envoy.transport_sockets.raw_buffer"
	AccessLogStdout      = "envoy.access_loggers.stdout"
	HTTPProtocolOptions  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	PeerPrincipalKey     = "io.istio.peer_principal"
)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only for messages built here, which always marshal
	}
	return a
}

// ADSConfigSource is {ads: {}, resource_api_version: V3}, every config_source of the shape.
func ADSConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ADSConfigSource()}
}

// CommonTLS is the CommonTlsContext of both HBONE directions for trust domain td: TLS
// 1.3 only, ALPN h2, certificate from secret "default", peers validated against secret
// "ROOTCA" with a URI SAN prefix "spiffe://<td>/".
func CommonTLS(td string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}},
					}},
				},
				ValidationContextSdsSecretConfig: sdsConfig(SecretRootCA),
			},
		},
	}
}

func http2Options() *corev3.Http2ProtocolOptions {
	return &corev3.Http2ProtocolOptions{
		AllowConnect:                true,
		InitialStreamWindowSize:     wrapperspb.UInt32(StreamWindow),
		InitialConnectionWindowSize: wrapperspb.UInt32(ConnectionWindow),
	}
}

func formatText(s string) *corev3.SubstitutionFormatString {
	return &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
		TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}},
	}}
}

// ConnectTerminate is the expected "connect_terminate" listener for trust domain td.
func ConnectTerminate(td string) *listenerv3.Listener {
	connect := []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:           ListenerConnectTerminate,
		CodecType:            hcmv3.HttpConnectionManager_HTTP2,
		Http2ProtocolOptions: http2Options(),
		UpgradeConfigs:       connect,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: ListenerConnectTerminate,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "connect",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterMainInternal},
						UpgradeConfigs: []*routev3.RouteAction_UpgradeConfig{{
							UpgradeType: "CONNECT", ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{},
						}},
					}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: FilterSetFilterState, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&sfsv3.Config{
				OnRequestHeaders: []*sfscommonv3.FilterStateValue{
					{
						Key:                &sfscommonv3.FilterStateValue_ObjectKey{ObjectKey: "envoy.filters.listener.original_dst.local_ip"},
						Value:              &sfscommonv3.FilterStateValue_FormatString{FormatString: formatText("%REQ(:AUTHORITY)%")},
						SharedWithUpstream: sfscommonv3.FilterStateValue_ONCE,
					},
					{
						Key:                &sfscommonv3.FilterStateValue_ObjectKey{ObjectKey: PeerPrincipalKey},
						FactoryKey:         "envoy.string",
						Value:              &sfscommonv3.FilterStateValue_FormatString{FormatString: formatText("%DOWNSTREAM_PEER_URI_SAN%")},
						SharedWithUpstream: sfscommonv3.FilterStateValue_ONCE,
					},
				},
			})}},
			{Name: FilterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
		},
	}
	return &listenerv3.Listener{
		Name: ListenerConnectTerminate,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: HBONEPort},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: &corev3.TransportSocket{Name: SocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
					RequireClientCertificate: wrapperspb.Bool(true),
					CommonTlsContext:         CommonTLS(td),
				}),
			}},
			Filters: []*listenerv3.Filter{{Name: FilterHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}},
		}},
	}
}

// ConnectOriginate is the expected "connect_originate" internal listener.
func ConnectOriginate() *listenerv3.Listener {
	tp := &tcpproxyv3.TcpProxy{
		StatPrefix:       ListenerConnectOriginate,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterConnectOriginate},
		TunnelingConfig:  &tcpproxyv3.TcpProxy_TunnelingConfig{Hostname: "%DYNAMIC_METADATA(tunnel:destination)%"},
	}
	return &listenerv3.Listener{
		Name:              ListenerConnectOriginate,
		ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: FilterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}},
		}},
	}
}

// MainInternalCluster is the expected "main_internal" cluster.
func MainInternalCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterMainInternal,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ClusterMainInternal,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
						AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: ListenerMainInternal},
					}}},
				}},
			}}}},
		},
	}
}

// ConnectOriginateCluster is the expected "connect_originate" cluster for trust domain td.
func ConnectOriginateCluster(td string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterConnectOriginate,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			MetadataKey: &metadatav3.MetadataKey{Key: "tunnel", Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "address"},
			}}},
		}},
		ConnectTimeout: durationpb.New(ConnectTimeout),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{HTTPProtocolOptions: mustAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
					InitialStreamWindowSize:     wrapperspb.UInt32(StreamWindow),
					InitialConnectionWindowSize: wrapperspb.UInt32(ConnectionWindow),
				}},
			}},
		})},
		TransportSocket: &corev3.TransportSocket{Name: SocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{
			TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: CommonTLS(td)}),
		}},
	}
}
