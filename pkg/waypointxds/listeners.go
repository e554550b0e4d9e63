package waypointxds

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
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// HBONEHTTP2Options are the HTTP/2 options of both HBONE directions: the initial stream
// and connection windows StreamWindow and ConnectionWindow (connect_terminate adds
// allow_connect).
func HBONEHTTP2Options() *corev3.Http2ProtocolOptions {
	return &corev3.Http2ProtocolOptions{
		InitialStreamWindowSize:     wrapperspb.UInt32(StreamWindow),
		InitialConnectionWindowSize: wrapperspb.UInt32(ConnectionWindow),
	}
}

// ConnectTerminate is the HBONE server listener "connect_terminate" on
// 0.0.0.0:15008 for trust domain td: mTLS (DownstreamTLS), HTTP/2 CONNECT routed to
// the cluster main_internal, with the CONNECT authority and the peer's URI SAN passed to
// main_internal as filter state (as Istio's waypoint).
func ConnectTerminate(td string) *listenerv3.Listener {
	h2 := HBONEHTTP2Options()
	h2.AllowConnect = true
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:           ListenerConnectTerminate,
		CodecType:            hcmv3.HttpConnectionManager_HTTP2,
		Http2ProtocolOptions: h2,
		UpgradeConfigs:       []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}},
		RouteSpecifier:       &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: connectRoutes()},
		HttpFilters: []*hcmv3.HttpFilter{
			HTTPFilter(FilterSetFilterState, &setfilterstatev3.Config{OnRequestHeaders: []*setfsv3.FilterStateValue{
				filterStateValue(FilterStateOriginalDstLocalIP, "", "%REQ(:AUTHORITY)%"),
				filterStateValue(FilterStatePeerPrincipal, "envoy.string", "%DOWNSTREAM_PEER_URI_SAN%"),
			}}),
			HTTPFilter(FilterRouter, &routerv3.Router{}),
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
			TransportSocket: DownstreamTLS(td),
			Filters:         []*listenerv3.Filter{NetworkFilter(FilterHTTPConnectionManager, hcm)},
		}},
	}
}

// connectRoutes is connect_terminate's inline route configuration: every CONNECT
// request upgraded and sent to main_internal.
func connectRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
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
	}
}

// filterStateValue sets key (with factory, when not empty) from a format string, shared
// once with the upstream internal connection. The format string is
// text_format_source.inline_string (text_format is deprecated in Envoy).
func filterStateValue(key, factory, format string) *setfsv3.FilterStateValue {
	return &setfsv3.FilterStateValue{
		Key:        &setfsv3.FilterStateValue_ObjectKey{ObjectKey: key},
		FactoryKey: factory,
		Value: &setfsv3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: format},
			}},
		}},
		SharedWithUpstream: setfsv3.FilterStateValue_ONCE,
	}
}

func internalListener() *listenerv3.Listener_InternalListener {
	return &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}}
}

// MainInternal is the internal listener "main_internal" with the given filter chains
// (one per service VIP and port, already sorted by name): an original_dst listener filter
// selects a chain by each CONNECT stream's destination; there is no default chain.
func MainInternal(chains []*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              ListenerMainInternal,
		ListenerSpecifier: internalListener(),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       FilterOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: MarshalAny(&originaldstv3.OriginalDst{})},
		}},
		FilterChains: chains,
	}
}

// ConnectOriginate is the internal listener "connect_originate": it tunnels each
// upstream connection of an outbound| cluster over HBONE (cluster connect_originate),
// with the endpoint's tunnel.destination metadata as CONNECT authority.
func ConnectOriginate() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              ListenerConnectOriginate,
		ListenerSpecifier: internalListener(),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{NetworkFilter(FilterTCPProxy, &tcpproxyv3.TcpProxy{
				StatPrefix:       ListenerConnectOriginate,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterConnectOriginate},
				TunnelingConfig: &tcpproxyv3.TcpProxy_TunnelingConfig{
					Hostname: "%DYNAMIC_METADATA(" + TunnelMetadataKey + ":" + TunnelDestinationKey + ")%",
				},
			})},
		}},
	}
}
