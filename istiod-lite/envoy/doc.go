// Package envoy turns a waypoint's L7 model (istiod-lite/l7.Waypoint) into Envoy xDS v3
// resources — listeners, route configurations, clusters, cluster load assignments and
// SDS secrets — in exactly the shape of the issue-5 design contract
// (/work/notes/issue5.md, section 2), and validates them before they are served.
//
// The shape follows Istio's ambient waypoint: HBONE is terminated on the listener
// "connect_terminate" (0.0.0.0:15008, mTLS, HTTP/2 CONNECT), each CONNECT stream is handed
// to the internal listener "main_internal", whose filter chains (one per service VIP and
// port) run an HTTP connection manager with RDS routes, RBAC, fault injection and the
// router, or a TCP proxy; upstream clusters "outbound|<port>|<subset>|<FQDN>" reach their
// endpoints through the internal listener "connect_originate", which opens an HBONE
// CONNECT tunnel to "<podIP>:15008" with the authority "<podIP>:<targetPort>".
//
// Generate builds and validates a Config; Validate checks each resource's generated
// protobuf validation (ValidateAll, including messages packed in Any fields) and that
// every name a resource refers to resolves to a resource of the right kind.
package envoy

import "errors"

// Resource names shared by the generator, the Go waypoint engine and tests (issue5.md
// section 2, "NAMES summary").
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

	// FilterStatePeerPrincipal is the filter-state key holding the downstream peer's
	// SPIFFE URI ("spiffe://<td>/ns/<ns>/sa/<sa>"), as Istio's waypoint; RBAC principals
	// match against it.
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

// Filter and extension names emitted in the configuration.
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
	HTTPProtocolOptionsKey      = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// HBONE flow-control windows of connect_terminate and connect_originate, in bytes.
const (
	StreamWindow     = 4 << 20  // initial_stream_window_size
	ConnectionWindow = 16 << 20 // initial_connection_window_size
)

// ErrInvalidConfig is wrapped by every error Validate (and so Generate) returns for a
// configuration that fails proto validation or holds a dangling reference.
var ErrInvalidConfig = errors.New("invalid envoy configuration")

// ErrInvalidInput is wrapped by Generate's errors for an l7.Waypoint it cannot express
// (a route with neither backends nor redirect, a bad regex, an unknown retry condition).
var ErrInvalidInput = errors.New("invalid waypoint input")

// ErrInvalidSecrets is wrapped by errors for empty or non-PEM secret material.
var ErrInvalidSecrets = errors.New("invalid secrets")
