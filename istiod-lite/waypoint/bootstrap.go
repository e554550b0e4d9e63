package waypoint

import (
	"fmt"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	grpccredv3 "github.com/envoyproxy/go-control-plane/envoy/config/grpc_credential/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	internallistenerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/bootstrap/internal_listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Names inside the Envoy bootstrap.
const (
	// adminCluster reaches Envoy's own admin listener; the status and metrics
	// listeners forward /healthz/ready and /metrics to it (as Istio's agent does).
	adminCluster = "admin"
	// fileMetadataPlugin is Envoy's gRPC call-credentials plugin that sends a file's
	// content as a header: the projected token as "authorization: Bearer <token>".
	fileMetadataPlugin = "envoy.grpc_credentials.file_based_metadata"
	// internalListenerExtension enables internal listeners (main_internal,
	// connect_originate in issue 5, section 2).
	internalListenerExtension = "envoy.bootstrap.internal_listener"
)

// Node metadata keys the waypoint sends in its xDS node (issue 5, section 1).
const (
	MetaNamespace      = "NAMESPACE"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaGatewayName    = "GATEWAY_NAME"
	MetaInstanceIPs    = "INSTANCE_IPS"
	MetaClusterID      = "CLUSTER_ID"
)

// bootstrap builds the Envoy bootstrap of gw's waypoint: the parts known when the
// Deployment is made (node cluster and metadata but INSTANCE_IPS; ADS to istiod-lite;
// status, metrics and admin). The pod-specific node id and INSTANCE_IPS reach Envoy
// through --config-yaml (see nodeOverride).
//
// xDS runs over Envoy's Google gRPC client, the only one whose call credentials can
// read a file: Envoy's own client (envoy_grpc) sends only static initial_metadata, so
// it could not present the kubelet-rotated token that istiod-lite requires.
func (c *Config) bootstrap(gw *gatewayv1.Gateway) (*bootstrapv3.Bootstrap, error) {
	creds, err := anypb.New(&grpccredv3.FileBasedMetadataConfig{
		SecretData:   &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: TokenFile}},
		HeaderKey:    "authorization",
		HeaderPrefix: "Bearer ",
	})
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	ilis, err := anypb.New(&internallistenerv3.InternalListener{})
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	status, err := forwardListener("status", wire.PortReadiness, map[string]string{ReadinessPath: "/ready"})
	if err != nil {
		return nil, err
	}
	metrics, err := forwardListener("metrics", wire.PortMetrics, map[string]string{
		"/metrics": "/stats/prometheus", "/stats/prometheus": "/stats/prometheus"})
	if err != nil {
		return nil, err
	}
	ads := &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{
			Cluster: gw.Name + "." + gw.Namespace,
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				MetaNamespace:      structpb.NewStringValue(gw.Namespace),
				MetaServiceAccount: structpb.NewStringValue(gw.Name),
				MetaGatewayName:    structpb.NewStringValue(gw.Name),
				MetaClusterID:      structpb.NewStringValue(c.ClusterID),
			}},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_DELTA_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices:              []*corev3.GrpcService{c.xdsService(creds)},
			},
			LdsConfig: ads,
			CdsConfig: proto.Clone(ads).(*corev3.ConfigSource),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{status, metrics},
			Clusters:  []*clusterv3.Cluster{adminClusterConfig()},
		},
		BootstrapExtensions: []*corev3.TypedExtensionConfig{{Name: internalListenerExtension, TypedConfig: ilis}},
		Admin:               &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", wire.PortAdmin)},
	}, nil
}

// xdsService: TLS to XDSAddress checked against the mesh root and XDSServerName, the
// token file as bearer credentials and the cluster id as initial metadata (wire.md's
// CA authentication, which istiod-lite also requires on xDS).
func (c *Config) xdsService(creds *anypb.Any) *corev3.GrpcService {
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
			TargetUri:  c.XDSAddress,
			StatPrefix: "xds-grpc",
			ChannelCredentials: &corev3.GrpcService_GoogleGrpc_ChannelCredentials{
				CredentialSpecifier: &corev3.GrpcService_GoogleGrpc_ChannelCredentials_SslCredentials{
					SslCredentials: &corev3.GrpcService_GoogleGrpc_SslCredentials{
						RootCerts: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: RootCertFile}},
					}}},
			CallCredentials: []*corev3.GrpcService_GoogleGrpc_CallCredentials{{
				CredentialSpecifier: &corev3.GrpcService_GoogleGrpc_CallCredentials_FromPlugin{
					FromPlugin: &corev3.GrpcService_GoogleGrpc_CallCredentials_MetadataCredentialsFromPlugin{
						Name:       fileMetadataPlugin,
						ConfigType: &corev3.GrpcService_GoogleGrpc_CallCredentials_MetadataCredentialsFromPlugin_TypedConfig{TypedConfig: creds},
					}}}},
			CredentialsFactoryName: fileMetadataPlugin,
			ChannelArgs: &corev3.GrpcService_GoogleGrpc_ChannelArgs{Args: map[string]*corev3.GrpcService_GoogleGrpc_ChannelArgs_Value{
				// The name the server certificate is checked against (the TLS SNI too).
				"grpc.ssl_target_name_override": {ValueSpecifier: &corev3.GrpcService_GoogleGrpc_ChannelArgs_Value_StringValue{StringValue: c.XDSServerName}},
			}},
		}},
		InitialMetadata: []*corev3.HeaderValue{{Key: wire.MetadataClusterID, Value: c.ClusterID}},
	}
}

// forwardListener listens on 0.0.0.0:port and sends each exact path of routes, with
// the path replaced by its value, to the admin listener; other paths get 404.
func forwardListener(name string, port int, routes map[string]string) (*listenerv3.Listener, error) {
	var rs []*routev3.Route
	for _, path := range sortedKeys(routes) {
		rs = append(rs, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: path}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: adminCluster},
				PrefixRewrite:    routes[path],
			}},
		})
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         name,
			VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"}, Routes: rs}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}, nil
}

func adminClusterConfig() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 adminCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: adminCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress("127.0.0.1", wire.PortAdmin),
				}},
			}}}},
		},
	}
}

func socketAddress(ip string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}
