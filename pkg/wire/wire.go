// Package wire holds the ports, labels, marks and well-known names that Ambit's
// components agree on. Values follow Istio ambient (see shared/spec/wire.md) so that
// Istio manifests and tools work unchanged.
package wire

// In-pod ports: ztunnel listens on these inside every enrolled pod's network namespace.
const (
	PortOutbound = 15001 // captured outbound TCP (plaintext from the app)
	PortInbound  = 15006 // captured inbound plaintext TCP
	PortHBONE    = 15008 // HBONE: HTTP/2 CONNECT over mutual TLS
	PortDNS      = 15053 // DNS proxy
)

// Node-level ports of ztunnel and istiod-lite.
const (
	PortAdmin      = 15000 // ztunnel admin, localhost only (/config_dump)
	PortMetrics    = 15020 // Prometheus /metrics
	PortReadiness  = 15021 // /healthz/ready
	PortXDSPlain   = 15010 // istiod-lite xDS + CA, plaintext (tests and local runs)
	PortXDSTLS     = 15012 // istiod-lite xDS + CA over TLS
	PortMonitoring = 15014 // istiod-lite monitoring
)

// Kubernetes labels and annotations, as Istio ambient names them.
const (
	LabelDataplaneMode      = "istio.io/dataplane-mode"
	DataplaneModeAmbient    = "ambient"
	DataplaneModeNone       = "none"
	AnnotationRedirection   = "ambient.istio.io/redirection"
	RedirectionEnabled      = "enabled"
	LabelUseWaypoint        = "istio.io/use-waypoint"
	LabelUseWaypointNS      = "istio.io/use-waypoint-namespace"
	LabelWaypointFor        = "istio.io/waypoint-for"
	WaypointNone            = "none"    // use-waypoint value: no waypoint
	WaypointForService      = "service" // waypoint-for values; service is the default
	WaypointForWorkload     = "workload"
	WaypointForAll          = "all"
	WaypointGatewayClass    = "istio-waypoint" // gatewayClassName of waypoints
	LabelGatewayName        = "gateway.networking.k8s.io/gateway-name"
	RootNamespace           = "istio-system"
	DefaultClusterID        = "Kubernetes"
	DefaultZtunnelNamespace = "istio-system"
	DefaultZtunnelAccount   = "ztunnel"
)

// Redirection constants shared by the node agent (which installs rules and programs)
// and ztunnel (which marks its delivery sockets).
const (
	// MarkCapture is the socket mark (SO_MARK) the connect4 program puts on an enrolled
	// app's TCP sockets and ztunnel puts on its in-pod delivery sockets; a policy routing
	// rule sends marked packets to RouteTableCapture.
	MarkCapture = 0x53b
	// RouteTableCapture holds "local 0.0.0.0/0 dev lo" inside each enrolled pod netns.
	RouteTableCapture = 100
)

// ZDSSocketPath is where the node agent listens for ztunnel (Istio's default path).
const ZDSSocketPath = "/var/run/ztunnel/ztunnel.sock"

// HBONE protocol names.
const (
	ALPNHTTP2 = "h2"
)

// Istio CA gRPC metadata keys.
const (
	MetadataImpersonatedIdentity = "ImpersonatedIdentity"
	MetadataClusterID            = "clusterid"
)
