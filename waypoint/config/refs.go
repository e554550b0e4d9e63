package config

import (
	"fmt"
	"maps"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// References lists the names a state refers to, for the xDS client's by-name
// subscriptions: route configurations of main_internal's HCMs, ClusterLoadAssignments of
// the EDS clusters and the secrets of the TLS contexts. Each slice is sorted.
type References struct {
	Routes    []string
	Endpoints []string
	Secrets   []string
}

// Refs computes the References of res. It reads what it can and never fails: invalid
// resources are reported by Build.
func Refs(res *Resources) References {
	routes := map[string]bool{}
	if l := res.Listeners[waypointxds.ListenerMainInternal]; l != nil {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != waypointxds.FilterHTTPConnectionManager {
					continue
				}
				if name, ok := rdsName(f.GetTypedConfig()); ok {
					routes[name] = true
				}
			}
		}
	}
	var eps []string
	for name, c := range res.Clusters {
		if c.GetEdsClusterConfig() != nil {
			eps = append(eps, name)
		}
	}
	slices.Sort(eps)
	return References{
		Routes:    slices.Sorted(maps.Keys(routes)),
		Endpoints: eps,
		Secrets:   []string{waypointxds.SecretRootCA, waypointxds.SecretDefault},
	}
}

// routeClusters lists the clusters a route configuration sends to (route, weighted and
// mirror clusters).
func routeClusters(rc *routev3.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if ra == nil {
				continue
			}
			if c := ra.GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, wc := range ra.GetWeightedClusters().GetClusters() {
				out = append(out, wc.GetName())
			}
			for _, m := range ra.GetRequestMirrorPolicies() {
				out = append(out, m.GetCluster())
			}
		}
	}
	return out
}

// checkRefs verifies that every reference resolves; failures wrap ErrIncomplete.
func checkRefs(res *Resources, cfg *Config) error {
	for _, n := range []string{waypointxds.ListenerConnectTerminate, waypointxds.ListenerMainInternal, waypointxds.ListenerConnectOriginate} {
		if res.Listeners[n] == nil {
			return fmt.Errorf("%w: listener %q missing", ErrIncomplete, n)
		}
	}
	if res.Clusters[waypointxds.ClusterConnectOriginate] != nil && cfg.TrustDomain == "" {
		return fmt.Errorf("%w: trust domain unknown", ErrIncomplete)
	}
	for _, n := range []string{waypointxds.ClusterMainInternal, waypointxds.ClusterConnectOriginate} {
		if res.Clusters[n] == nil {
			return fmt.Errorf("%w: cluster %q missing", ErrIncomplete, n)
		}
	}
	for _, ch := range cfg.Chains {
		if ch.HTTP == nil {
			if cfg.Clusters[ch.TCPCluster] == nil {
				return fmt.Errorf("%w: chain %q: cluster %q missing", ErrIncomplete, ch.Name, ch.TCPCluster)
			}
			continue
		}
		if ch.HTTP.Routes == nil {
			return fmt.Errorf("%w: chain %q: route configuration %q missing", ErrIncomplete, ch.Name, ch.HTTP.RouteName)
		}
		for _, c := range routeClusters(res.Routes[ch.HTTP.RouteName]) {
			if cfg.Clusters[c] == nil {
				return fmt.Errorf("%w: route configuration %q: cluster %q missing", ErrIncomplete, ch.HTTP.RouteName, c)
			}
		}
	}
	for name := range cfg.Clusters {
		if res.Endpoints[name] == nil {
			return fmt.Errorf("%w: cluster %q: endpoints missing", ErrIncomplete, name)
		}
	}
	if cfg.TLS.Certificate == nil || cfg.TLS.Roots == nil {
		return fmt.Errorf("%w: secrets %q and %q required", ErrIncomplete, waypointxds.SecretDefault, waypointxds.SecretRootCA)
	}
	return nil
}

// rdsName reads the RDS route configuration name of an HCM.
func rdsName(a *anypb.Any) (string, bool) {
	var hcm hcmv3.HttpConnectionManager
	if a == nil || a.UnmarshalTo(&hcm) != nil || hcm.GetRds().GetRouteConfigName() == "" {
		return "", false
	}
	return hcm.GetRds().GetRouteConfigName(), true
}
