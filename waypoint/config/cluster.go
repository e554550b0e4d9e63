package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/breaker"
	"github.com/ambitmesh/ambit/waypoint/outlier"
)

// buildClusters compiles every outbound| cluster and its endpoints.
func buildClusters(res *Resources, prev *Config, cfg *Config, opts Options) error {
	for _, name := range slices.Sorted(maps.Keys(res.Clusters)) {
		if name == waypointxds.ClusterMainInternal || name == waypointxds.ClusterConnectOriginate {
			continue
		}
		c := res.Clusters[name]
		var old *Cluster
		var oldProto *clusterv3.Cluster
		if prev != nil {
			old = prev.Clusters[name]
			oldProto = prev.Resources.Clusters[name]
		}
		cl, err := buildCluster(name, c, old, oldProto, opts)
		if err != nil {
			return err
		}
		if cla := res.Endpoints[name]; cla != nil {
			eps, err := buildEndpoints(name, cla)
			if err != nil {
				return err
			}
			cl.Endpoints = eps
		}
		cfg.Clusters[name] = cl
	}
	for name := range res.Endpoints {
		if _, ok := cfg.Clusters[name]; !ok {
			if _, err := buildEndpoints(name, res.Endpoints[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

func buildCluster(name string, c *clusterv3.Cluster, old *Cluster, oldProto *clusterv3.Cluster, opts Options) (*Cluster, error) {
	res := fmt.Sprintf("cluster %q", name)
	if !strings.HasPrefix(name, "outbound|") || strings.Count(name, "|") != 3 {
		return nil, fmt.Errorf("%s: unsupported cluster name (want outbound|<port>|<subset>|<fqdn>)", res)
	}
	if c.GetName() != name {
		return nil, invalid(res, "name", "does not match the resource name")
	}
	if err := only(res, "", c, "name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"circuit_breakers", "outlier_detection", "typed_extension_protocol_options", "transport_socket"); err != nil {
		return nil, err
	}
	if c.GetType() != clusterv3.Cluster_EDS {
		return nil, invalid(res, "type", "got %s, want EDS", c.GetType())
	}
	eds := c.GetEdsClusterConfig()
	if err := only(res, "eds_cluster_config", eds, "eds_config", "service_name"); err != nil {
		return nil, err
	}
	if sn := eds.GetServiceName(); sn != "" && sn != name {
		return nil, invalid(res, "eds_cluster_config.service_name", "must be empty or the cluster name")
	}
	if err := sameShape(res+": eds_cluster_config.eds_config", orEmpty(eds.GetEdsConfig()), waypointxds.ADSConfigSource()); err != nil {
		return nil, err
	}
	cl := &Cluster{Name: name, ConnectTimeout: c.GetConnectTimeout().AsDuration()}
	if cl.ConnectTimeout <= 0 {
		cl.ConnectTimeout = waypointxds.ConnectTimeout
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		cl.LB = RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		cl.LB = LeastRequest
	case clusterv3.Cluster_RANDOM:
		cl.LB = Random
	default:
		return nil, invalid(res, "lb_policy", "unsupported policy %s", c.GetLbPolicy())
	}
	h2, err := protocolOptions(res, c)
	if err != nil {
		return nil, err
	}
	cl.HTTP2 = h2
	if err := sameShape(res+": transport_socket", orEmptySocket(c.GetTransportSocket()), waypointxds.InternalUpstreamSocket()); err != nil {
		return nil, err
	}
	if old != nil && oldProto != nil && proto.Equal(oldProto.GetCircuitBreakers(), c.GetCircuitBreakers()) {
		cl.Breaker = old.Breaker
	} else if cl.Breaker, err = breaker.New(c.GetCircuitBreakers()); err != nil {
		return nil, fmt.Errorf("%s: circuit_breakers: %w", res, err)
	}
	if od := c.GetOutlierDetection(); od != nil {
		if old != nil && old.Outlier != nil && proto.Equal(oldProto.GetOutlierDetection(), od) {
			cl.Outlier = old.Outlier
		} else if cl.Outlier, err = outlier.New(od, opts.Now); err != nil {
			return nil, fmt.Errorf("%s: outlier_detection: %w", res, err)
		}
	}
	return cl, nil
}

func orEmpty(cs *corev3.ConfigSource) *corev3.ConfigSource {
	if cs == nil {
		return &corev3.ConfigSource{}
	}
	return cs
}

func orEmptySocket(ts *corev3.TransportSocket) *corev3.TransportSocket {
	if ts == nil {
		return &corev3.TransportSocket{}
	}
	return ts
}

// protocolOptions reads typed_extension_protocol_options: HTTP/1.1 or HTTP/2 upstream.
func protocolOptions(res string, c *clusterv3.Cluster) (bool, error) {
	opts := c.GetTypedExtensionProtocolOptions()
	for k := range opts {
		if k != waypointxds.HTTPProtocolOptionsKey {
			return false, invalid(res, "typed_extension_protocol_options", "unsupported key %q", k)
		}
	}
	a := opts[waypointxds.HTTPProtocolOptionsKey]
	if a == nil {
		return false, nil // Envoy's default: HTTP/1.1
	}
	p := "typed_extension_protocol_options[" + waypointxds.HTTPProtocolOptionsKey + "]"
	hpo, err := unpack(res, p, a, &httpv3.HttpProtocolOptions{})
	if err != nil {
		return false, err
	}
	if err := only(res, p, hpo, "explicit_http_config"); err != nil {
		return false, err
	}
	ehc := hpo.GetExplicitHttpConfig()
	if ehc == nil {
		return false, invalid(res, p+".explicit_http_config", "required")
	}
	if h1 := ehc.GetHttpProtocolOptions(); h1 != nil {
		return false, only(res, p+".explicit_http_config.http_protocol_options", h1)
	}
	if h2 := ehc.GetHttp2ProtocolOptions(); h2 != nil {
		return true, only(res, p+".explicit_http_config.http2_protocol_options", h2,
			"initial_stream_window_size", "initial_connection_window_size")
	}
	return false, invalid(res, p+".explicit_http_config", "unsupported protocol config")
}

// buildEndpoints reads a ClusterLoadAssignment: HEALTHY (or UNKNOWN) endpoints with
// tunnel metadata; others are skipped, as Envoy routes to none of them.
func buildEndpoints(name string, cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	res := fmt.Sprintf("endpoints %q", name)
	if err := only(res, "", cla, "cluster_name", "endpoints"); err != nil {
		return nil, err
	}
	if cla.GetClusterName() != name {
		return nil, invalid(res, "cluster_name", "does not match the resource name")
	}
	if len(cla.GetEndpoints()) > 1 {
		return nil, invalid(res, "endpoints", "want at most one locality")
	}
	var out []Endpoint
	for i, lle := range cla.GetEndpoints() {
		lp := fmt.Sprintf("endpoints[%d]", i)
		if err := only(res, lp, lle, "lb_endpoints", "locality"); err != nil {
			return nil, err
		}
		for j, le := range lle.GetLbEndpoints() {
			ep, ok, err := buildEndpoint(res, fmt.Sprintf("%s.lb_endpoints[%d]", lp, j), le)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, ep)
			}
		}
	}
	return out, nil
}

func buildEndpoint(res, p string, le *endpointv3.LbEndpoint) (Endpoint, bool, error) {
	if err := only(res, p, le, "endpoint", "metadata", "health_status"); err != nil {
		return Endpoint{}, false, err
	}
	if err := only(res, p+".endpoint", le.GetEndpoint(), "address"); err != nil {
		return Endpoint{}, false, err
	}
	addr := le.GetEndpoint().GetAddress()
	if err := only(res, p+".endpoint.address", addr, "envoy_internal_address"); err != nil {
		return Endpoint{}, false, err
	}
	ia := addr.GetEnvoyInternalAddress()
	if err := only(res, p+".endpoint.address.envoy_internal_address", ia, "server_listener_name", "endpoint_id"); err != nil {
		return Endpoint{}, false, err
	}
	if ia.GetServerListenerName() != waypointxds.ListenerConnectOriginate {
		return Endpoint{}, false, invalid(res, p+".endpoint.address.envoy_internal_address.server_listener_name", "got %q, want %q", ia.GetServerListenerName(), waypointxds.ListenerConnectOriginate)
	}
	md := le.GetMetadata()
	if err := only(res, p+".metadata", md, "filter_metadata"); err != nil {
		return Endpoint{}, false, err
	}
	tun := md.GetFilterMetadata()[waypointxds.TunnelMetadataKey]
	if len(md.GetFilterMetadata()) != 1 || tun == nil {
		return Endpoint{}, false, invalid(res, p+".metadata.filter_metadata", "want exactly the key \"tunnel\"")
	}
	var ep Endpoint
	for k, v := range tun.GetFields() {
		s := v.GetStringValue()
		if _, err := netip.ParseAddrPort(s); err != nil {
			return Endpoint{}, false, invalid(res, p+".metadata.filter_metadata[tunnel]."+k, "want ip:port, got %q", s)
		}
		switch k {
		case waypointxds.TunnelDestinationKey:
			ep.Destination = s
		case waypointxds.TunnelAddressKey:
			ep.Address = s
		default:
			return Endpoint{}, false, invalid(res, p+".metadata.filter_metadata[tunnel]", "unsupported key %q", k)
		}
	}
	if ep.Destination == "" || ep.Address == "" {
		return Endpoint{}, false, invalid(res, p+".metadata.filter_metadata[tunnel]", "destination and address required")
	}
	if id := ia.GetEndpointId(); id != "" && id != ep.Destination {
		return Endpoint{}, false, invalid(res, p+".endpoint.address.envoy_internal_address.endpoint_id", "got %q, want tunnel.destination %q", id, ep.Destination)
	}
	switch le.GetHealthStatus() {
	case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
		return ep, true, nil
	default:
		return ep, false, nil
	}
}
