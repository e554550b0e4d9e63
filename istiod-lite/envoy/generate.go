package envoy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// DefaultTrustDomain is used when l7.Waypoint.TrustDomain is empty.
const DefaultTrustDomain = "cluster.local"

// Generate builds the complete Envoy configuration of waypoint w (issue5.md section 2)
// with the SDS secrets built from secrets, and validates it (Validate). Empty secrets
// are left out, so validation then fails on the unresolved "default"/"ROOTCA" names; use
// GenerateConfig for the configuration alone. Errors wrap ErrInvalidInput (w cannot be
// expressed), ErrInvalidSecrets or ErrInvalidConfig. Equal inputs give equal output
// (Config.Marshal is byte-identical).
func Generate(w *l7.Waypoint, secrets Secrets) (*Config, error) {
	c, err := build(w)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if !secrets.Empty() {
		if c.Secrets, err = SecretResources(secrets); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	if err := Validate(c); err != nil {
		return nil, fmt.Errorf("generate %s/%s: %w", w.Namespace, w.Name, err)
	}
	return c, nil
}

// GenerateConfig is Generate without secrets: the returned Config has SecretsOmitted set
// and validates without them (golden files, or a shared configuration that gets each
// stream's secrets with Config.WithSecrets).
func GenerateConfig(w *l7.Waypoint) (*Config, error) {
	c, err := build(w)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	c.SecretsOmitted = true
	if err := Validate(c); err != nil {
		return nil, fmt.Errorf("generate %s/%s: %w", w.Namespace, w.Name, err)
	}
	return c, nil
}

// build assembles the listeners, routes, clusters and endpoints of w. Services without
// a valid VIP are not served. A backend a route reaches that w.Clusters lacks gets a
// cluster without endpoints (requests to it fail with 503, as a missing Envoy cluster
// would) rather than failing the whole waypoint.
func build(w *l7.Waypoint) (*Config, error) {
	if w == nil {
		return nil, inputErr("nil waypoint")
	}
	td := cmp.Or(w.TrustDomain, DefaultTrustDomain)
	if !validTrustDomain(td) {
		return nil, inputErr("invalid trust domain %q", td)
	}
	c := &Config{}
	var chains []*listenerv3.FilterChain
	reached := map[string]l7.Backend{}
	protocols := map[string]l7.Protocol{} // default cluster name -> port protocol
	seenMatch := map[string]string{}      // "vip|port" -> chain name
	seenChain := map[string]bool{}
	for si := range w.Services {
		svc := &w.Services[si]
		if !validHostname(svc.Hostname) {
			return nil, inputErr("service %s/%s: invalid hostname %q", svc.Namespace, svc.Name, svc.Hostname)
		}
		vips := validVIPs(svc)
		if len(vips) == 0 {
			continue
		}
		rbac := rbacFilters(append(slices.Clone(w.Policies), svc.Policies...))
		for pi := range svc.Ports {
			port := &svc.Ports[pi]
			if port.Number == 0 || port.Number > 65535 {
				return nil, inputErr("service %s: port %d outside 1..65535", svc.Hostname, port.Number)
			}
			http := IsHTTP(port.Protocol)
			name := waypointxds.ChainName(svc.Hostname, port.Number, http)
			if seenChain[name] {
				return nil, inputErr("two services or ports named %q", name)
			}
			seenChain[name] = true
			for _, ip := range vips {
				key := fmt.Sprintf("%s|%d", ip, port.Number)
				if prev, dup := seenMatch[key]; dup {
					return nil, inputErr("chains %q and %q both match %s", prev, name, key)
				}
				seenMatch[key] = name
			}
			def := l7.Backend{Hostname: svc.Hostname, Port: port.Number}
			protocols[def.Name()] = port.Protocol
			match := chainMatch(vips, port.Number)
			if !http {
				chains = append(chains, tcpChain(name, match, def.Name()))
				reached[def.Name()] = def
				continue
			}
			rc, backends, err := routeConfig(name, svc.Hostname, port)
			if err != nil {
				return nil, err
			}
			c.Routes = append(c.Routes, rc)
			for _, b := range backends {
				reached[b.Name()] = b
			}
			chains = append(chains, httpChain(name, match, rbac))
		}
	}
	sortByName(chains)
	c.Listeners = []*listenerv3.Listener{waypointxds.ConnectTerminate(td), waypointxds.MainInternal(chains), waypointxds.ConnectOriginate()}
	if err := addClusters(c, w.Clusters, reached, protocols, td); err != nil {
		return nil, err
	}
	c.sort()
	return c, nil
}

func validVIPs(svc *l7.Service) []netip.Addr {
	var out []netip.Addr
	for _, ip := range svc.VIPs {
		if ip.IsValid() && !slices.Contains(out, ip.Unmap()) {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// addClusters adds the two HBONE plumbing clusters, every cluster of the model and an
// endpoint-less cluster for each reached backend the model lacks, each outbound| one
// with its ClusterLoadAssignment.
func addClusters(c *Config, model []l7.Cluster, reached map[string]l7.Backend, protocols map[string]l7.Protocol, td string) error {
	c.Clusters = []*clusterv3.Cluster{waypointxds.MainInternalCluster(), waypointxds.ConnectOriginateCluster(td)}
	seen := map[string]bool{waypointxds.ClusterMainInternal: true, waypointxds.ClusterConnectOriginate: true}
	add := func(m *l7.Cluster) error {
		if seen[m.Name()] {
			return inputErr("duplicate cluster %q", m.Name())
		}
		seen[m.Name()] = true
		if !validHostname(m.Hostname) || strings.Contains(m.Subset, "|") || m.Port == 0 || m.Port > 65535 {
			return inputErr("cluster %q: invalid hostname or subset, or port outside 1..65535", m.Name())
		}
		oc, err := outboundCluster(m)
		if err != nil {
			return inputErr("%w", err)
		}
		c.Clusters = append(c.Clusters, oc)
		c.Endpoints = append(c.Endpoints, loadAssignment(m))
		return nil
	}
	for i := range model {
		if err := add(&model[i]); err != nil {
			return err
		}
	}
	var missing []l7.Backend
	for name, b := range reached {
		if !seen[name] {
			missing = append(missing, b)
		}
	}
	slices.SortFunc(missing, func(a, b l7.Backend) int { return cmp.Compare(a.Name(), b.Name()) })
	for _, b := range missing {
		proto := protocols[l7.Backend{Hostname: b.Hostname, Port: b.Port}.Name()]
		if err := add(&l7.Cluster{Backend: b, Protocol: proto}); err != nil {
			return err
		}
	}
	return nil
}

// validHostname accepts a non-empty name of printable characters other than space and
// '|' (the cluster-name separator).
func validHostname(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if c <= ' ' || c >= 0x7f || c == '|' {
			return false
		}
	}
	return true
}

// validTrustDomain accepts SPIFFE trust-domain characters: lowercase letters, digits,
// '.', '-' and '_'.
func validTrustDomain(td string) bool {
	for _, c := range td {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return td != ""
}
