package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	setfsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/wire"
)

func networkFilter(name string, m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: marshalAny(m)}}
}

func httpFilter(name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: marshalAny(m)}}
}

func internalListener() *listenerv3.Listener_InternalListener {
	return &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}}
}

func hboneHTTP2Options() *corev3.Http2ProtocolOptions {
	return &corev3.Http2ProtocolOptions{
		InitialStreamWindowSize:     u32(StreamWindow),
		InitialConnectionWindowSize: u32(ConnectionWindow),
	}
}

// connectTerminate is the HBONE server listener on 0.0.0.0:15008: mTLS, HTTP/2 CONNECT
// routed to main_internal, with the CONNECT authority and the peer's URI SAN passed to
// main_internal as filter state (as Istio's waypoint).
func connectTerminate(trustDomain string) *listenerv3.Listener {
	h2 := hboneHTTP2Options()
	h2.AllowConnect = true
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:           ListenerConnectTerminate,
		CodecType:            hcmv3.HttpConnectionManager_HTTP2,
		Http2ProtocolOptions: h2,
		UpgradeConfigs:       []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: ListenerConnectTerminate,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "connect",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{
						ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{},
					}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterMainInternal},
						UpgradeConfigs: []*routev3.RouteAction_UpgradeConfig{{
							UpgradeType:   "CONNECT",
							ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{},
						}},
					}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(FilterSetFilterState, &setfilterstatev3.Config{OnRequestHeaders: []*setfsv3.FilterStateValue{
				filterStateValue(FilterStateOriginalDstLocalIP, "", "%REQ(:AUTHORITY)%"),
				filterStateValue(FilterStatePeerPrincipal, "envoy.string", "%DOWNSTREAM_PEER_URI_SAN%"),
			}}),
			httpFilter(FilterRouter, &routerv3.Router{}),
		},
	}
	return &listenerv3.Listener{
		Name: ListenerConnectTerminate,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: wire.PortHBONE},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: downstreamTLS(trustDomain),
			Filters:         []*listenerv3.Filter{networkFilter(FilterHTTPConnectionManager, hcm)},
		}},
	}
}

// filterStateValue sets key (with factory, when not empty) from a format string, shared
// once with the upstream internal connection. The format string is
// text_format_source.inline_string (text_format is deprecated in Envoy).
func filterStateValue(key, factory, format string) *setfsv3.FilterStateValue {
	v := &setfsv3.FilterStateValue{
		Key: &setfsv3.FilterStateValue_ObjectKey{ObjectKey: key},
		Value: &setfsv3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: format},
			}},
		}},
		SharedWithUpstream: setfsv3.FilterStateValue_ONCE,
	}
	v.FactoryKey = factory
	return v
}

// mainInternal is the internal listener selecting a chain by the original destination
// (VIP:port) of each CONNECT stream; chains must already be sorted by name.
func mainInternal(chains []*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              ListenerMainInternal,
		ListenerSpecifier: internalListener(),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name: FilterOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{
				TypedConfig: marshalAny(&originaldstv3.OriginalDst{}),
			},
		}},
		FilterChains: chains,
	}
}

// connectOriginate is the internal listener that tunnels each upstream connection of an
// outbound| cluster over HBONE, with the endpoint's tunnel.destination as authority.
func connectOriginate() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              ListenerConnectOriginate,
		ListenerSpecifier: internalListener(),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{networkFilter(FilterTCPProxy, &tcpproxyv3.TcpProxy{
				StatPrefix:       ListenerConnectOriginate,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterConnectOriginate},
				TunnelingConfig: &tcpproxyv3.TcpProxy_TunnelingConfig{
					Hostname: "%DYNAMIC_METADATA(" + TunnelMetadataKey + ":" + TunnelDestinationKey + ")%",
				},
			})},
		}},
	}
}
