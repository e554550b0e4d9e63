package envoy

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	internalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// ConnectTimeout is the connect_timeout of outbound| and connect_originate clusters.
const ConnectTimeout = 10 * time.Second

var lbPolicies = map[l7.LBPolicy]clusterv3.Cluster_LbPolicy{
	"":                clusterv3.Cluster_ROUND_ROBIN,
	l7.LBRoundRobin:   clusterv3.Cluster_ROUND_ROBIN,
	l7.LBLeastRequest: clusterv3.Cluster_LEAST_REQUEST,
	l7.LBRandom:       clusterv3.Cluster_RANDOM,
}

func staticAddress(listener, endpointID string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listener},
		EndpointId:           endpointID,
	}}}
}

// mainInternalCluster hands each CONNECT stream of connect_terminate to main_internal.
func mainInternalCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterMainInternal,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ClusterMainInternal,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: staticAddress(ListenerMainInternal, ""),
				}},
			}}}},
		},
	}
}

// connectOriginateCluster dials "tunnel.address" of the endpoint that chose it, over
// mTLS and HTTP/2 (the HBONE client side).
func connectOriginateCluster(trustDomain string) *clusterv3.Cluster {
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
		ConnectTimeout:                duration(ConnectTimeout),
		TypedExtensionProtocolOptions: protocolOptions(hboneHTTP2Options()),
		TransportSocket:               upstreamTLS(trustDomain),
	}
}

// protocolOptions is typed_extension_protocol_options with an explicit upstream HTTP
// version: HTTP/2 when h2 is set (with its options), else HTTP/1.1.
func protocolOptions(h2 *corev3.Http2ProtocolOptions) map[string]*anypb.Any {
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		},
	}
	if h2 != nil {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}
	}
	return map[string]*anypb.Any{HTTPProtocolOptionsKey: marshalAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	})}
}

// outboundCluster is the EDS cluster of a backend: its endpoints are reached through
// connect_originate, passing the endpoint's "tunnel" metadata along.
func outboundCluster(c *l7.Cluster) (*clusterv3.Cluster, error) {
	lb, ok := lbPolicies[c.LB]
	if !ok {
		return nil, errorf("cluster %q: unknown load-balancing policy %q", c.Name(), c.LB)
	}
	var h2 *corev3.Http2ProtocolOptions
	if c.Protocol == l7.ProtocolHTTP2 {
		h2 = &corev3.Http2ProtocolOptions{}
	}
	out := &clusterv3.Cluster{
		Name:                          c.Name(),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfig()},
		ConnectTimeout:                duration(ConnectTimeout),
		LbPolicy:                      lb,
		TypedExtensionProtocolOptions: protocolOptions(h2),
		TransportSocket: &corev3.TransportSocket{
			Name: TransportSocketInternal,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: marshalAny(&internalv3.InternalUpstreamTransport{
				PassthroughMetadata: []*internalv3.InternalUpstreamTransport_MetadataValueSource{{
					Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Host_{Host: &metadatav3.MetadataKind_Host{}}},
					Name: TunnelMetadataKey,
				}},
				TransportSocket: &corev3.TransportSocket{
					Name:       TransportSocketRawBuffer,
					ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: marshalAny(&rawbufferv3.RawBuffer{})},
				},
			})},
		},
	}
	if l := c.Limits; l != nil && *l != (l7.Limits{}) {
		out.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     u32Set(l.MaxConnections),
			MaxPendingRequests: u32Set(l.MaxPendingRequests),
			MaxRequests:        u32Set(l.MaxRequests),
			MaxRetries:         u32Set(l.MaxRetries),
		}}}
	}
	if o := c.Outlier; o != nil {
		if err := outlier(out, o); err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name(), err)
		}
	}
	return out, nil
}

func outlier(out *clusterv3.Cluster, o *l7.Outlier) error {
	if o.Interval < 0 || o.BaseEjectionTime < 0 {
		return errorf("negative outlier detection interval or ejection time")
	}
	if o.MaxEjectionPercent > 100 {
		return errorf("outlier detection max ejection percent %d over 100", o.MaxEjectionPercent)
	}
	od := &clusterv3.OutlierDetection{
		Consecutive_5Xx:    u32Set(o.Consecutive5xx),
		MaxEjectionPercent: u32Set(o.MaxEjectionPercent),
	}
	if o.Interval > 0 {
		od.Interval = duration(o.Interval)
	}
	if o.BaseEjectionTime > 0 {
		od.BaseEjectionTime = duration(o.BaseEjectionTime)
	}
	out.OutlierDetection = od
	return nil
}

// loadAssignment is the EDS resource of a cluster: one locality with every endpoint
// (sorted by IP, then port; invalid addresses and port 0 skipped, duplicates merged),
// each an internal address of connect_originate with its "tunnel" metadata. A cluster
// without endpoints gets no locality.
func loadAssignment(c *l7.Cluster) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name()}
	eps := slices.Clone(c.Endpoints)
	slices.SortFunc(eps, func(a, b l7.Endpoint) int {
		if d := a.IP.Unmap().Compare(b.IP.Unmap()); d != 0 {
			return d
		}
		return int(int64(a.Port) - int64(b.Port))
	})
	var lbs []*endpointv3.LbEndpoint
	var last netip.AddrPort
	for _, ep := range eps {
		if !ep.IP.IsValid() || ep.Port == 0 || ep.Port > 65535 {
			continue
		}
		dst := netip.AddrPortFrom(ep.IP.Unmap(), uint16(ep.Port))
		if dst == last {
			continue
		}
		last = dst
		tunnel := &structpb.Struct{Fields: map[string]*structpb.Value{
			TunnelDestinationKey: structpb.NewStringValue(dst.String()),
			TunnelAddressKey:     structpb.NewStringValue(netip.AddrPortFrom(dst.Addr(), wire.PortHBONE).String()),
		}}
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: staticAddress(ListenerConnectOriginate, dst.String()),
			}},
			Metadata:     &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TunnelMetadataKey: tunnel}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		})
	}
	if len(lbs) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	return cla
}
