package envoy

import (
	"net/netip"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// IsHTTP reports whether a port protocol gets L7 processing (an HCM chain).
func IsHTTP(p l7.Protocol) bool { return p == l7.ProtocolHTTP || p == l7.ProtocolHTTP2 }

// chainMatch matches any of the service's VIPs (/32 or /128) on port.
func chainMatch(vips []netip.Addr, port uint32) *listenerv3.FilterChainMatch {
	m := &listenerv3.FilterChainMatch{DestinationPort: u32(port)}
	for _, ip := range vips {
		m.PrefixRanges = append(m.PrefixRanges, &corev3.CidrRange{
			AddressPrefix: ip.Unmap().String(),
			PrefixLen:     u32(uint32(ip.Unmap().BitLen())),
		})
	}
	return m
}

// httpChain is the HCM chain of an HTTP service port; rbac holds the RBAC filters
// (DENY then ALLOW) that apply to it.
func httpChain(name string, match *listenerv3.FilterChainMatch, rbac []*hcmv3.HttpFilter) *listenerv3.FilterChain {
	filters := append([]*hcmv3.HttpFilter(nil), rbac...)
	filters = append(filters,
		waypointxds.HTTPFilter(waypointxds.FilterFault, &faultv3.HTTPFault{}),
		waypointxds.HTTPFilter(waypointxds.FilterRouter, &routerv3.Router{}),
	)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name,
			ConfigSource:    waypointxds.ADSConfigSource(),
		}},
		HttpFilters: filters,
		AccessLog:   []*accesslogv3.AccessLog{waypointxds.StdoutAccessLog()},
	}
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters:          []*listenerv3.Filter{waypointxds.NetworkFilter(waypointxds.FilterHTTPConnectionManager, hcm)},
	}
}

// tcpChain proxies an opaque TCP service port to its cluster.
func tcpChain(name string, match *listenerv3.FilterChainMatch, cluster string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters: []*listenerv3.Filter{waypointxds.NetworkFilter(waypointxds.FilterTCPProxy, &tcpproxyv3.TcpProxy{
			StatPrefix:       name,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}
}
