package waypointxds

import (
	"strconv"
	"time"
)

// Resource names of the fixed resources (issue5.md section 2, "NAMES summary").
const (
	// ListenerConnectTerminate is the HBONE termination listener on 0.0.0.0:15008.
	ListenerConnectTerminate = "connect_terminate"
	// ListenerMainInternal is the internal listener holding one filter chain per
	// (service VIP, port) the waypoint serves.
	ListenerMainInternal = "main_internal"
	// ListenerConnectOriginate is the internal listener that opens HBONE tunnels to
	// endpoints.
	ListenerConnectOriginate = "connect_originate"

	// ClusterMainInternal is the static cluster that hands CONNECT streams to
	// ListenerMainInternal.
	ClusterMainInternal = "main_internal"
	// ClusterConnectOriginate is the ORIGINAL_DST cluster of HBONE connections (to the
	// "tunnel" metadata's "address").
	ClusterConnectOriginate = "connect_originate"

	// SecretDefault is the SDS secret holding the waypoint's certificate chain and key.
	SecretDefault = "default"
	// SecretRootCA is the SDS secret holding the mesh root certificates.
	SecretRootCA = "ROOTCA"
)

// Filter-state and metadata keys of the HBONE plumbing.
const (
	// FilterStatePeerPrincipal is the filter-state key holding the downstream peer's
	// SPIFFE URI ("spiffe://<td>/ns/<ns>/sa/<sa>"), as Istio's waypoint; RBAC principals
	// and the access log's downstream_peer read it.
	FilterStatePeerPrincipal = "io.istio.peer_principal"
	// FilterStateOriginalDstLocalIP is the filter-state key the original_dst listener
	// filter of ListenerMainInternal reads the destination "ip:port" from.
	FilterStateOriginalDstLocalIP = "envoy.filters.listener.original_dst.local_ip"

	// TunnelMetadataKey is the endpoint filter_metadata namespace holding
	// TunnelDestinationKey and TunnelAddressKey.
	TunnelMetadataKey = "tunnel"
	// TunnelDestinationKey is the CONNECT authority ("<podIP>:<targetPort>").
	TunnelDestinationKey = "destination"
	// TunnelAddressKey is the HBONE address dialled ("<podIP>:15008").
	TunnelAddressKey = "address"
)

// Filter and extension names (Envoy's well-known names) used by the configuration.
const (
	FilterHTTPConnectionManager = "envoy.filters.network.http_connection_manager"
	FilterTCPProxy              = "envoy.filters.network.tcp_proxy"
	FilterOriginalDst           = "envoy.filters.listener.original_dst"
	FilterSetFilterState        = "envoy.filters.http.set_filter_state"
	FilterRBAC                  = "envoy.filters.http.rbac"
	FilterFault                 = "envoy.filters.http.fault"
	FilterRouter                = "envoy.filters.http.router"
	AccessLoggerStdout          = "envoy.access_loggers.stdout"
	TransportSocketTLS          = "envoy.transport_sockets.tls"
	TransportSocketInternal     = "envoy.transport_sockets.internal_upstream"
	TransportSocketRawBuffer    = "envoy.transport_sockets.raw_buffer"
	// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of a cluster's
	// upstream HTTP options.
	HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// HBONE flow-control windows of connect_terminate and connect_originate, in bytes (as
// Istio's ztunnel and waypoint).
const (
	StreamWindow     = 4 << 20  // initial_stream_window_size, 4194304
	ConnectionWindow = 16 << 20 // initial_connection_window_size, 16777216
)

// ConnectTimeout is the connect_timeout of outbound| and connect_originate clusters.
const ConnectTimeout = 10 * time.Second

// ChainName is the main_internal filter chain (and, for HTTP, RouteConfiguration) name
// of a service port: "inbound-vip|<port>|<http|tcp>|<fqdn>".
func ChainName(fqdn string, port uint32, http bool) string {
	kind := "tcp"
	if http {
		kind = "http"
	}
	return "inbound-vip|" + strconv.FormatUint(uint64(port), 10) + "|" + kind + "|" + fqdn
}

// OutboundClusterName is the name of a backend's EDS cluster (and its
// ClusterLoadAssignment): "outbound|<port>|<subset>|<fqdn>", subset empty for the
// whole service.
func OutboundClusterName(port uint32, subset, fqdn string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + fqdn
}
