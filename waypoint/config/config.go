package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/authz"
	"github.com/ambitmesh/ambit/waypoint/breaker"
	"github.com/ambitmesh/ambit/waypoint/outlier"
	"github.com/ambitmesh/ambit/waypoint/route"
)

// ErrIncomplete is wrapped by Build when the resources are valid but a reference does
// not resolve yet (a route configuration, cluster, endpoints or secret that has not
// arrived). The xDS client ACKs such a state and keeps serving the previous Config, as
// Envoy warms listeners and clusters until their dependencies arrive.
var ErrIncomplete = errors.New("config incomplete")

// Resources are the waypoint's xDS resources by name, one map per type. A Resources is
// treated as immutable once handed to Build; Clone before changing it.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Secrets   map[string]*tlsv3.Secret
}

// NewResources returns empty Resources.
func NewResources() *Resources {
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
}

// Clone copies the maps (not the protos, which are never modified).
func (r *Resources) Clone() *Resources {
	return &Resources{
		Listeners: maps.Clone(r.Listeners),
		Routes:    maps.Clone(r.Routes),
		Clusters:  maps.Clone(r.Clusters),
		Endpoints: maps.Clone(r.Endpoints),
		Secrets:   maps.Clone(r.Secrets),
	}
}

// Options tune Build.
type Options struct {
	// TrustDomain, when set, must equal the trust domain of the configuration's SAN
	// matchers ("spiffe://<td>/").
	TrustDomain string
	// AccessLog receives the access log lines of envoy.access_loggers.stdout (default
	// io.Discard).
	AccessLog io.Writer
	// Now is the clock of outlier detection (default time.Now).
	Now func() time.Time
}

// Config is one applied, immutable waypoint configuration.
type Config struct {
	// TrustDomain is the trust domain of the SAN matchers.
	TrustDomain string
	// TLS is the certificate and roots from secrets "default" and "ROOTCA".
	TLS *TLS
	// Chains are the filter chains of main_internal, in resource order.
	Chains []*Chain
	// Clusters are the outbound| clusters by name.
	Clusters map[string]*Cluster
	// Resources are the resources this Config was built from (for /config_dump).
	Resources *Resources
}

// Chain is one main_internal filter chain: a (service, port) the waypoint serves.
type Chain struct {
	Name     string         // "inbound-vip|<port>|<http|tcp>|<FQDN>"
	Service  string         // FQDN
	Port     uint32         // destination_port
	Prefixes []netip.Prefix // the service VIPs
	// HTTP is the HCM of an HTTP chain; nil for a TCP chain.
	HTTP *HTTP
	// TCPCluster is the tcp_proxy cluster of a TCP chain.
	TCPCluster string
}

// HTTP is a compiled http_connection_manager.
type HTTP struct {
	RouteName string
	Routes    *route.Table
	// RBAC are the envoy.filters.http.rbac filters in order; a request passes only if
	// every one allows it.
	RBAC []*authz.Filter
	// Fault reports whether envoy.filters.http.fault is in the chain (per-route
	// policies apply only then).
	Fault bool
	// Log writes the access log; nil when the HCM has none.
	Log *accesslog.Logger
}

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy int

// Load-balancing policies the engine implements (Envoy's names).
const (
	RoundRobin LBPolicy = iota
	LeastRequest
	Random
)

// Cluster is a compiled outbound| cluster with its endpoints.
type Cluster struct {
	Name           string
	LB             LBPolicy
	HTTP2          bool // upstream HTTP/2 (prior knowledge) instead of HTTP/1.1
	ConnectTimeout time.Duration
	Breaker        *breaker.Breaker
	Outlier        *outlier.Detector // nil: no outlier detection
	Endpoints      []Endpoint        // healthy endpoints, sorted as sent
}

// Endpoint is one upstream: the HBONE tunnel to dial and the CONNECT target.
type Endpoint struct {
	Destination string // tunnel.destination, "podIP:targetPort" (:authority)
	Address     string // tunnel.address, "podIP:15008" (TCP dial)
}

// Chain returns the filter chain serving dst, or nil (Envoy: connection closed).
func (c *Config) Chain(dst netip.AddrPort) *Chain {
	for _, ch := range c.Chains {
		if ch.Port != uint32(dst.Port()) {
			continue
		}
		for _, p := range ch.Prefixes {
			if p.Contains(dst.Addr().Unmap()) {
				return ch
			}
		}
	}
	return nil
}

// Build validates res and compiles it into a Config. prev (may be nil) lends its
// circuit breaker and outlier state to clusters whose settings did not change. Errors
// name the resource and field; an error wrapping ErrIncomplete means only that a
// reference does not resolve yet.
func Build(res *Resources, prev *Config, opts Options) (*Config, error) {
	if opts.AccessLog == nil {
		opts.AccessLog = io.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := &Config{Clusters: map[string]*Cluster{}, Resources: res}
	if err := buildFixed(res, cfg, opts); err != nil {
		return nil, err
	}
	tables := map[string]*route.Table{}
	for _, name := range slices.Sorted(maps.Keys(res.Routes)) {
		t, err := compileRoutes(name, res.Routes[name])
		if err != nil {
			return nil, err
		}
		tables[name] = t
	}
	if mi := res.Listeners[waypointxds.ListenerMainInternal]; mi != nil {
		chains, err := buildChains(mi, tables, opts)
		if err != nil {
			return nil, err
		}
		cfg.Chains = chains
	}
	if err := buildClusters(res, prev, cfg, opts); err != nil {
		return nil, err
	}
	if err := buildSecrets(res, cfg); err != nil {
		return nil, err
	}
	if err := checkRefs(res, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// buildFixed checks the fixed listeners and clusters, learning the trust domain from
// connect_terminate's SAN matcher.
func buildFixed(res *Resources, cfg *Config, opts Options) error {
	for name := range res.Listeners {
		if name != waypointxds.ListenerConnectTerminate && name != waypointxds.ListenerMainInternal && name != waypointxds.ListenerConnectOriginate {
			return fmt.Errorf("listener %q: unsupported listener name", name)
		}
	}
	td := opts.TrustDomain
	if ct := res.Listeners[waypointxds.ListenerConnectTerminate]; ct != nil {
		got, err := trustDomainOf(ct)
		if err != nil {
			return err
		}
		if td != "" && got != td {
			return fmt.Errorf("listener %q: trust domain %q, want %q", waypointxds.ListenerConnectTerminate, got, td)
		}
		td = got
		if err := sameShape(fmt.Sprintf("listener %q", waypointxds.ListenerConnectTerminate), ct, waypointxds.ConnectTerminate(td)); err != nil {
			return err
		}
	}
	cfg.TrustDomain = td
	if co := res.Listeners[waypointxds.ListenerConnectOriginate]; co != nil {
		if err := sameShape(fmt.Sprintf("listener %q", waypointxds.ListenerConnectOriginate), co, waypointxds.ConnectOriginate()); err != nil {
			return err
		}
	}
	if c := res.Clusters[waypointxds.ClusterMainInternal]; c != nil {
		if err := sameShape(fmt.Sprintf("cluster %q", waypointxds.ClusterMainInternal), c, waypointxds.MainInternalCluster()); err != nil {
			return err
		}
	}
	if c := res.Clusters[waypointxds.ClusterConnectOriginate]; c != nil && td != "" {
		if err := sameShape(fmt.Sprintf("cluster %q", waypointxds.ClusterConnectOriginate), c, waypointxds.ConnectOriginateCluster(td)); err != nil {
			return err
		}
	}
	return nil
}

// trustDomainOf reads "spiffe://<td>/" from connect_terminate's SAN matcher.
func trustDomainOf(l *listenerv3.Listener) (string, error) {
	res := fmt.Sprintf("listener %q", l.GetName())
	if len(l.GetFilterChains()) != 1 {
		return "", invalid(res, "filter_chains", "want exactly one filter chain")
	}
	ts := l.GetFilterChains()[0].GetTransportSocket()
	dtc, err := unpack(res, "filter_chains[0].transport_socket", ts.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
	if err != nil {
		return "", err
	}
	sans := dtc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(sans) != 1 {
		return "", invalid(res, "filter_chains[0].transport_socket", "want one match_typed_subject_alt_names entry")
	}
	return parseTDPrefix(res, sans[0].GetMatcher().GetPrefix())
}

func parseTDPrefix(res, prefix string) (string, error) {
	const scheme = "spiffe://"
	if len(prefix) <= len(scheme)+1 || prefix[:len(scheme)] != scheme || prefix[len(prefix)-1] != '/' {
		return "", invalid(res, "match_typed_subject_alt_names[0].matcher.prefix", "want \"spiffe://<trust domain>/\", got %q", prefix)
	}
	td := prefix[len(scheme) : len(prefix)-1]
	for _, r := range td {
		if r == '/' || r == ' ' {
			return "", invalid(res, "match_typed_subject_alt_names[0].matcher.prefix", "bad trust domain %q", td)
		}
	}
	return td, nil
}

func compileRoutes(name string, rc *routev3.RouteConfiguration) (*route.Table, error) {
	if rc.GetName() != name {
		return nil, fmt.Errorf("route configuration %q: name %q does not match the resource name", name, rc.GetName())
	}
	t, err := route.Compile(rc)
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", name, err)
	}
	return t, nil
}
