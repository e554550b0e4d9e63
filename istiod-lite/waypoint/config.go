package waypoint

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Engines a waypoint Deployment can run (Config.Engine).
const (
	// EngineAmbit runs Ambit's Go waypoint (image Config.Image) with the flags of
	// issue 5, section 1.
	EngineAmbit = "ambit"
	// EngineEnvoy runs a stock Envoy (image Config.EnvoyImage) with the bootstrap this
	// package renders into the ConfigMap "<gateway>-envoy-bootstrap".
	EngineEnvoy = "envoy"
)

// Defaults of Config's optional fields, as Istio's waypoint installation uses them.
const (
	DefaultXDSAddress        = "istiod.istio-system.svc:15012"
	DefaultXDSServerName     = "istiod.istio-system.svc"
	DefaultTrustDomain       = "cluster.local"
	DefaultDomainSuffix      = "cluster.local"
	DefaultRootCertConfigMap = "istio-ca-root-cert" // published by istiod-lite/kube
	DefaultTokenAudience     = "istio-ca"
	DefaultLogLevel          = "info"
	// DefaultControllerName is the controllerName of the istio-waypoint GatewayClass.
	// Istio's istiod uses "istio.io/mesh-controller" for waypoints (its constant
	// ManagedGatewayMeshController); "istio.io/gateway-controller" is the class of
	// Istio's ingress gateways.
	DefaultControllerName = "istio.io/mesh-controller"
	// DefaultCRDCheckInterval is how often Run asks API discovery whether the Gateway
	// API CRDs have been installed, while they are missing.
	DefaultCRDCheckInterval = 10 * time.Second
	// DefaultTokenExpiration is the lifetime the kubelet gives the projected token.
	DefaultTokenExpiration = 12 * time.Hour
)

// Paths inside the waypoint container, as the ztunnel chart mounts the same files.
const (
	RootCertDir  = "/var/run/secrets/istio" // ConfigMap RootCertConfigMap
	RootCertFile = RootCertDir + "/root-cert.pem"
	TokenDir     = "/var/run/secrets/tokens" // projected service-account token
	TokenFile    = TokenDir + "/istio-token"
	BootstrapDir = "/etc/istio/proxy" // Envoy engine only: ConfigMap <gateway>-envoy-bootstrap
	// BootstrapFile is the Envoy bootstrap's path, given to Envoy with -c.
	BootstrapFile = BootstrapDir + "/" + bootstrapKey
	// bootstrapKey is the ConfigMap key holding the bootstrap YAML.
	bootstrapKey = "envoy.yaml"
	// rootCertKey is the root ConfigMap's data key (istiod-lite/kube.RootCertKey).
	rootCertKey = "root-cert.pem"
)

// Listen addresses given to the waypoint (issue 5, section 1).
var (
	adminAddr     = fmt.Sprintf("127.0.0.1:%d", wire.PortAdmin)
	metricsAddr   = fmt.Sprintf(":%d", wire.PortMetrics)
	readinessAddr = fmt.Sprintf(":%d", wire.PortReadiness)
)

// ErrInvalidConfig is wrapped by New's error when Config is unusable.
var ErrInvalidConfig = errors.New("invalid waypoint controller config")

// Config is what the controller puts into every waypoint Deployment. Zero fields take
// the Default* values; Image (engine ambit) or EnvoyImage (engine envoy) is required.
type Config struct {
	// Image is the Ambit waypoint image, e.g. "ghcr.io/ambitmesh/waypoint:dev".
	Image string
	// XDSAddress is istiod-lite's xDS host:port (--xds-address).
	XDSAddress string
	// XDSServerName is the TLS name istiod-lite's serving certificate carries
	// (--xds-server-name; Envoy: SNI and name check).
	XDSServerName string
	// ClusterID is sent as gRPC metadata "clusterid" and node metadata CLUSTER_ID.
	ClusterID string
	// TrustDomain is the SPIFFE trust domain (--trust-domain).
	TrustDomain string
	// DomainSuffix is the cluster DNS suffix (node id, status Hostname address).
	DomainSuffix string
	// RootCertConfigMap is the ConfigMap (key root-cert.pem) holding the mesh root.
	RootCertConfigMap string
	// TokenAudience is the audience of the projected service-account token.
	TokenAudience string
	// Engine is EngineAmbit (default) or EngineEnvoy.
	Engine string
	// EnvoyImage is the Envoy image for EngineEnvoy, e.g. "envoyproxy/envoy:v1.36.2".
	EnvoyImage string
	// LogLevel is debug, info, warn or error (--log-level; Envoy's names for Envoy).
	LogLevel string
	// ControllerName is the GatewayClass controllerName this controller owns.
	ControllerName string
	// CRDCheckInterval is how often missing Gateway API CRDs are looked for again.
	CRDCheckInterval time.Duration
}

// withDefaults returns c with defaults filled in, or an error wrapping
// ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.XDSAddress, DefaultXDSAddress)
	def(&c.XDSServerName, DefaultXDSServerName)
	def(&c.ClusterID, wire.DefaultClusterID)
	def(&c.TrustDomain, DefaultTrustDomain)
	def(&c.DomainSuffix, DefaultDomainSuffix)
	def(&c.RootCertConfigMap, DefaultRootCertConfigMap)
	def(&c.TokenAudience, DefaultTokenAudience)
	def(&c.Engine, EngineAmbit)
	def(&c.LogLevel, DefaultLogLevel)
	def(&c.ControllerName, DefaultControllerName)
	if c.CRDCheckInterval <= 0 {
		c.CRDCheckInterval = DefaultCRDCheckInterval
	}
	if _, _, err := net.SplitHostPort(c.XDSAddress); err != nil {
		return c, fmt.Errorf("%w: xds address %q: %w", ErrInvalidConfig, c.XDSAddress, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("%w: log level %q (want debug, info, warn or error)", ErrInvalidConfig, c.LogLevel)
	}
	switch c.Engine {
	case EngineAmbit:
		if c.Image == "" {
			return c, fmt.Errorf("%w: Image is required for engine %q", ErrInvalidConfig, c.Engine)
		}
	case EngineEnvoy:
		if c.EnvoyImage == "" {
			return c, fmt.Errorf("%w: EnvoyImage is required for engine %q", ErrInvalidConfig, c.Engine)
		}
	default:
		return c, fmt.Errorf("%w: engine %q (want %q or %q)", ErrInvalidConfig, c.Engine, EngineAmbit, EngineEnvoy)
	}
	return c, nil
}
