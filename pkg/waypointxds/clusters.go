package waypointxds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	internalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// MainInternalCluster is the STATIC cluster "main_internal" whose one endpoint is the
// internal listener main_internal: connect_terminate hands each CONNECT stream to it.
func MainInternalCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterMainInternal,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ClusterMainInternal,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: InternalAddress(ListenerMainInternal, ""),
				}},
			}}}},
		},
	}
}

// ConnectOriginateCluster is the ORIGINAL_DST cluster "connect_originate" for trust
// domain td: it dials the "tunnel" metadata's "address" of the endpoint that chose it,
// over mTLS (UpstreamTLS) and HTTP/2 with the HBONE windows (the HBONE client side).
func ConnectOriginateCluster(td string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterConnectOriginate,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			MetadataKey: &metadatav3.MetadataKey{
				Key: TunnelMetadataKey,
				Path: []*metadatav3.MetadataKey_PathSegment{{
					Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: TunnelAddressKey},
				}},
			},
		}},
		ConnectTimeout:                durationpb.New(ConnectTimeout),
		TypedExtensionProtocolOptions: ProtocolOptions(HBONEHTTP2Options()),
		TransportSocket:               UpstreamTLS(td),
	}
}

// ProtocolOptions is a cluster's typed_extension_protocol_options with an explicit
// upstream HTTP version: HTTP/2 with options h2 when h2 is not nil, else HTTP/1.1.
func ProtocolOptions(h2 *corev3.Http2ProtocolOptions) map[string]*anypb.Any {
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		},
	}
	if h2 != nil {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}
	}
	return map[string]*anypb.Any{HTTPProtocolOptionsKey: MarshalAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	})}
}

// InternalUpstreamSocket is the transport_socket of every outbound| cluster: the
// endpoint's host metadata TunnelMetadataKey passed through to connect_originate over a
// raw buffer.
func InternalUpstreamSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: TransportSocketInternal,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: MarshalAny(&internalv3.InternalUpstreamTransport{
			PassthroughMetadata: []*internalv3.InternalUpstreamTransport_MetadataValueSource{{
				Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Host_{Host: &metadatav3.MetadataKind_Host{}}},
				Name: TunnelMetadataKey,
			}},
			TransportSocket: &corev3.TransportSocket{
				Name:       TransportSocketRawBuffer,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: MarshalAny(&rawbufferv3.RawBuffer{})},
			},
		})},
	}
}

// TunnelEndpoint is the HEALTHY lb_endpoint of one pod of an outbound| cluster: the
// internal address of connect_originate with endpoint_id destination, and filter
// metadata TunnelMetadataKey {destination: "<podIP>:<targetPort>", address:
// "<podIP>:15008"}.
func TunnelEndpoint(destination, address string) *endpointv3.LbEndpoint {
	tunnel := &structpb.Struct{Fields: map[string]*structpb.Value{
		TunnelDestinationKey: structpb.NewStringValue(destination),
		TunnelAddressKey:     structpb.NewStringValue(address),
	}}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: InternalAddress(ListenerConnectOriginate, destination),
		}},
		Metadata:     &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TunnelMetadataKey: tunnel}},
		HealthStatus: corev3.HealthStatus_HEALTHY,
	}
}
