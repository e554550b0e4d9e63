package envoy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Validate checks c as istiod-lite does before serving it (F-WP-3): every resource's
// protoc-gen-validate rules (ValidateAll, also on the messages packed in Any fields:
// filters, transport sockets, protocol options, per-route filter configs); unique names
// per type; every reference resolves — HCM rds names to a RouteConfiguration, route
// clusters, weighted clusters, mirror clusters and tcp_proxy clusters to a Cluster, EDS
// clusters to a ClusterLoadAssignment of the same name, envoy_internal_address
// server_listener_name to an internal Listener, SDS secret names to a Secret (unless
// c.SecretsOmitted); every RouteConfiguration and ClusterLoadAssignment is referenced;
// no two filter chains of a listener have the same name or match. The error wraps
// ErrInvalidConfig and joins one error per problem, each naming the resource and the
// field path ("listener \"main_internal\": filter_chains[0]...: ...").
func Validate(c *Config) error {
	if c == nil {
		return fmt.Errorf("%w: nil config", ErrInvalidConfig)
	}
	v := newValidator(c)
	for _, l := range c.Listeners {
		v.resource("listener", l.GetName(), l)
		v.listener(l)
	}
	for _, r := range c.Routes {
		v.resource("route configuration", r.GetName(), r)
	}
	for _, cl := range c.Clusters {
		v.resource("cluster", cl.GetName(), cl)
	}
	for _, e := range c.Endpoints {
		v.resource("cluster load assignment", e.GetClusterName(), e)
	}
	for _, s := range c.Secrets {
		v.resource("secret", s.GetName(), s)
	}
	v.unreferenced()
	if len(v.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(v.errs...))
}

type validator struct {
	c                   *Config
	listeners, internal map[string]bool
	routes, clusters    map[string]bool
	endpoints, secrets  map[string]bool
	usedRoutes, usedEDS map[string]bool
	cur                 string // the resource being checked, for messages
	errs                []error
}

func newValidator(c *Config) *validator {
	v := &validator{c: c, internal: map[string]bool{}, usedRoutes: map[string]bool{}, usedEDS: map[string]bool{}}
	v.listeners = index(v, "listener", c.Listeners, (*listenerv3.Listener).GetName)
	v.routes = index(v, "route configuration", c.Routes, (*routev3.RouteConfiguration).GetName)
	v.clusters = index(v, "cluster", c.Clusters, (*clusterv3.Cluster).GetName)
	v.endpoints = index(v, "cluster load assignment", c.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	v.secrets = index(v, "secret", c.Secrets, (*tlsv3.Secret).GetName)
	for _, l := range c.Listeners {
		if l.GetInternalListener() != nil {
			v.internal[l.GetName()] = true
		}
	}
	return v
}

func index[T any](v *validator, kind string, items []T, name func(T) string) map[string]bool {
	out := make(map[string]bool, len(items))
	for _, it := range items {
		n := name(it)
		if out[n] {
			v.errs = append(v.errs, fmt.Errorf("%s %q: duplicate name", kind, n))
		}
		out[n] = true
	}
	return out
}

func (v *validator) failf(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s: "+format, append([]any{v.cur, path}, args...)...))
}

// resource validates one top-level resource and walks it for references.
func (v *validator) resource(kind, name string, m proto.Message) {
	v.cur = fmt.Sprintf("%s %q", kind, name)
	if m == nil || !m.ProtoReflect().IsValid() {
		v.errs = append(v.errs, fmt.Errorf("%s: nil resource", v.cur))
		return
	}
	validateAll(v, m, "(resource)")
	v.walk(m.ProtoReflect(), "")
}

func validateAll(v *validator, m proto.Message, path string) {
	if va, ok := m.(interface{ ValidateAll() error }); ok {
		if err := va.ValidateAll(); err != nil {
			v.failf(path, "%w", err)
		}
	}
}

// walk visits every set message field of m in field order, unpacking Any fields.
func (v *validator) walk(m protoreflect.Message, path string) {
	v.refs(m.Interface(), path)
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() == nil || !m.Has(fd) {
			continue
		}
		name := string(fd.Name())
		if path != "" {
			name = path + "." + name
		}
		val := m.Get(fd)
		switch {
		case fd.IsList():
			l := val.List()
			for j := 0; j < l.Len(); j++ {
				v.visit(l.Get(j).Message(), fmt.Sprintf("%s[%d]", name, j))
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			var keys []protoreflect.MapKey
			val.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				v.visit(val.Map().Get(k).Message(), name+"["+k.String()+"]")
			}
		default:
			v.visit(val.Message(), name)
		}
	}
}

func (v *validator) visit(m protoreflect.Message, path string) {
	full := m.Descriptor().FullName()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			v.failf(path, "unpack %s: %w", a.GetTypeUrl(), err)
			return
		}
		path += "<" + string(inner.ProtoReflect().Descriptor().Name()) + ">"
		validateAll(v, inner, path)
		v.walk(inner.ProtoReflect(), path)
		return
	}
	if strings.HasPrefix(string(full), "google.protobuf.") {
		return // Struct, Duration, wrappers: no references inside
	}
	v.walk(m, path)
}

// refs checks the references a message holds.
func (v *validator) refs(m proto.Message, path string) {
	switch x := m.(type) {
	case *hcmv3.HttpConnectionManager:
		if rds := x.GetRds(); rds != nil {
			v.usedRoutes[rds.GetRouteConfigName()] = true
			v.need(v.routes, "RouteConfiguration", rds.GetRouteConfigName(), path+".rds.route_config_name")
		}
	case *routev3.RouteAction:
		if n := x.GetCluster(); n != "" || x.GetClusterSpecifier() == nil {
			v.need(v.clusters, "Cluster", n, path+".cluster")
		}
		for i, wc := range x.GetWeightedClusters().GetClusters() {
			v.need(v.clusters, "Cluster", wc.GetName(), fmt.Sprintf("%s.weighted_clusters.clusters[%d].name", path, i))
		}
		for i, mp := range x.GetRequestMirrorPolicies() {
			v.need(v.clusters, "Cluster", mp.GetCluster(), fmt.Sprintf("%s.request_mirror_policies[%d].cluster", path, i))
		}
	case *tcpproxyv3.TcpProxy:
		if n := x.GetCluster(); n != "" || x.GetClusterSpecifier() == nil {
			v.need(v.clusters, "Cluster", n, path+".cluster")
		}
		for i, wc := range x.GetWeightedClusters().GetClusters() {
			v.need(v.clusters, "Cluster", wc.GetName(), fmt.Sprintf("%s.weighted_clusters.clusters[%d].name", path, i))
		}
	case *corev3.EnvoyInternalAddress:
		v.need(v.internal, "internal Listener", x.GetServerListenerName(), path+".server_listener_name")
	case *tlsv3.SdsSecretConfig:
		if !v.c.SecretsOmitted {
			v.need(v.secrets, "Secret", x.GetName(), path+".name")
		}
	case *clusterv3.Cluster:
		if x.GetType() == clusterv3.Cluster_EDS {
			n := x.GetEdsClusterConfig().GetServiceName()
			if n == "" {
				n = x.GetName()
			}
			v.usedEDS[n] = true
			v.need(v.endpoints, "ClusterLoadAssignment", n, "eds_cluster_config")
		}
	}
}

func (v *validator) need(set map[string]bool, kind, name, path string) {
	if !set[name] {
		v.failf(strings.TrimPrefix(path, "."), "%s %q not found", kind, name)
	}
}

// listener checks what proto validation cannot: an address or internal_listener, and
// distinct filter chain names and matches.
func (v *validator) listener(l *listenerv3.Listener) {
	if l.GetAddress() == nil && l.GetInternalListener() == nil {
		v.failf("address", "neither an address nor internal_listener")
	}
	seen, names := map[string]int{}, map[string]int{}
	for i, fc := range l.GetFilterChains() {
		if j, dup := names[fc.GetName()]; dup && fc.GetName() != "" {
			v.failf(fmt.Sprintf("filter_chains[%d].name", i), "same name as filter_chains[%d]", j)
		}
		names[fc.GetName()] = i
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fc.GetFilterChainMatch())
		if err != nil {
			v.failf(fmt.Sprintf("filter_chains[%d].filter_chain_match", i), "%v", err)
			continue
		}
		if j, dup := seen[string(b)]; dup {
			v.failf(fmt.Sprintf("filter_chains[%d].filter_chain_match", i), "same match as filter_chains[%d]", j)
		}
		seen[string(b)] = i
	}
}

// unreferenced reports RDS and EDS resources nothing refers to (go-control-plane's
// snapshot consistency rule).
func (v *validator) unreferenced() {
	for _, r := range v.c.Routes {
		if !v.usedRoutes[r.GetName()] {
			v.errs = append(v.errs, fmt.Errorf("route configuration %q: not referenced by any listener", r.GetName()))
		}
	}
	for _, e := range v.c.Endpoints {
		if !v.usedEDS[e.GetClusterName()] {
			v.errs = append(v.errs, fmt.Errorf("cluster load assignment %q: not referenced by any EDS cluster", e.GetClusterName()))
		}
	}
}
