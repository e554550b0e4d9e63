package envoy

import (
	"fmt"
	"net/netip"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/pkg/wire"
)

var lbPolicies = map[l7.LBPolicy]clusterv3.Cluster_LbPolicy{
	"":                clusterv3.Cluster_ROUND_ROBIN,
	l7.LBRoundRobin:   clusterv3.Cluster_ROUND_ROBIN,
	l7.LBLeastRequest: clusterv3.Cluster_LEAST_REQUEST,
	l7.LBRandom:       clusterv3.Cluster_RANDOM,
}

// outboundCluster is the EDS cluster of a backend: its endpoints are reached through
// connect_originate, passing the endpoint's "tunnel" metadata along.
func outboundCluster(c *l7.Cluster) (*clusterv3.Cluster, error) {
	lb, ok := lbPolicies[c.LB]
	if !ok {
		return nil, errorf("cluster %q: unknown load-balancing policy %q", c.Name(), c.LB)
	}
	var h2 *corev3.Http2ProtocolOptions
	if c.Protocol == l7.ProtocolHTTP2 {
		h2 = &corev3.Http2ProtocolOptions{}
	}
	out := &clusterv3.Cluster{
		Name:                          c.Name(),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: waypointxds.ADSConfigSource()},
		ConnectTimeout:                duration(waypointxds.ConnectTimeout),
		LbPolicy:                      lb,
		TypedExtensionProtocolOptions: waypointxds.ProtocolOptions(h2),
		TransportSocket:               waypointxds.InternalUpstreamSocket(),
	}
	if l := c.Limits; l != nil && *l != (l7.Limits{}) {
		out.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     u32Set(l.MaxConnections),
			MaxPendingRequests: u32Set(l.MaxPendingRequests),
			MaxRequests:        u32Set(l.MaxRequests),
			MaxRetries:         u32Set(l.MaxRetries),
		}}}
	}
	if o := c.Outlier; o != nil {
		if err := outlier(out, o); err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name(), err)
		}
	}
	return out, nil
}

func outlier(out *clusterv3.Cluster, o *l7.Outlier) error {
	if o.Interval < 0 || o.BaseEjectionTime < 0 {
		return errorf("negative outlier detection interval or ejection time")
	}
	if o.MaxEjectionPercent > 100 {
		return errorf("outlier detection max ejection percent %d over 100", o.MaxEjectionPercent)
	}
	od := &clusterv3.OutlierDetection{
		Consecutive_5Xx:    u32Set(o.Consecutive5xx),
		MaxEjectionPercent: u32Set(o.MaxEjectionPercent),
	}
	if o.Interval > 0 {
		od.Interval = duration(o.Interval)
	}
	if o.BaseEjectionTime > 0 {
		od.BaseEjectionTime = duration(o.BaseEjectionTime)
	}
	out.OutlierDetection = od
	return nil
}

// loadAssignment is the EDS resource of a cluster: one locality with every endpoint
// (sorted by IP, then port; invalid addresses and port 0 skipped, duplicates merged),
// each an internal address of connect_originate with its "tunnel" metadata. A cluster
// without endpoints gets no locality.
func loadAssignment(c *l7.Cluster) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name()}
	eps := slices.Clone(c.Endpoints)
	slices.SortFunc(eps, func(a, b l7.Endpoint) int {
		if d := a.IP.Unmap().Compare(b.IP.Unmap()); d != 0 {
			return d
		}
		return int(int64(a.Port) - int64(b.Port))
	})
	var lbs []*endpointv3.LbEndpoint
	var last netip.AddrPort
	for _, ep := range eps {
		if !ep.IP.IsValid() || ep.Port == 0 || ep.Port > 65535 {
			continue
		}
		dst := netip.AddrPortFrom(ep.IP.Unmap(), uint16(ep.Port))
		if dst == last {
			continue
		}
		last = dst
		hbone := netip.AddrPortFrom(dst.Addr(), wire.PortHBONE)
		lbs = append(lbs, waypointxds.TunnelEndpoint(dst.String(), hbone.String()))
	}
	if len(lbs) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	return cla
}
