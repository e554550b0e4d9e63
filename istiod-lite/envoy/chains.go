package envoy

import (
	"net/netip"
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// ChainName is the main_internal filter chain (and, for HTTP, RouteConfiguration) name
// of a service port: "inbound-vip|<port>|<http|tcp>|<FQDN>".
func ChainName(hostname string, port uint32, http bool) string {
	proto := "tcp"
	if http {
		proto = "http"
	}
	return "inbound-vip|" + strconv.FormatUint(uint64(port), 10) + "|" + proto + "|" + hostname
}

// IsHTTP reports whether a port protocol gets L7 processing (an HCM chain).
func IsHTTP(p l7.Protocol) bool { return p == l7.ProtocolHTTP || p == l7.ProtocolHTTP2 }

// AccessLogFormat is the JSON access-log format of every HTTP chain: key -> Envoy command
// operator (issue5.md section 2).
var AccessLogFormat = map[string]string{
	"start_time":       "%START_TIME%",
	"method":           "%REQ(:METHOD)%",
	"path":             "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":         "%PROTOCOL%",
	"response_code":    "%RESPONSE_CODE%",
	"response_flags":   "%RESPONSE_FLAGS%",
	"bytes_received":   "%BYTES_RECEIVED%",
	"bytes_sent":       "%BYTES_SENT%",
	"duration":         "%DURATION%",
	"upstream_host":    "%UPSTREAM_HOST%",
	"upstream_cluster": "%UPSTREAM_CLUSTER%",
	"authority":        "%REQ(:AUTHORITY)%",
	"user_agent":       "%REQ(USER-AGENT)%",
	"request_id":       "%REQ(X-REQUEST-ID)%",
	"downstream_peer":  "%FILTER_STATE(" + FilterStatePeerPrincipal + ":PLAIN)%",
	"route_name":       "%ROUTE_NAME%",
}

func accessLog() []*accesslogv3.AccessLog {
	fields := make(map[string]*structpb.Value, len(AccessLogFormat))
	for k, v := range AccessLogFormat {
		fields[k] = structpb.NewStringValue(v)
	}
	stdout := &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{
			JsonFormat: &structpb.Struct{Fields: fields},
		}},
	}}
	return []*accesslogv3.AccessLog{{
		Name:       AccessLoggerStdout,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: marshalAny(stdout)},
	}}
}

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
		httpFilter(FilterFault, &faultv3.HTTPFault{}),
		httpFilter(FilterRouter, &routerv3.Router{}),
	)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name,
			ConfigSource:    adsConfig(),
		}},
		HttpFilters: filters,
		AccessLog:   accessLog(),
	}
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters:          []*listenerv3.Filter{networkFilter(FilterHTTPConnectionManager, hcm)},
	}
}

// tcpChain proxies an opaque TCP service port to its cluster.
func tcpChain(name string, match *listenerv3.FilterChainMatch, cluster string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters: []*listenerv3.Filter{networkFilter(FilterTCPProxy, &tcpproxyv3.TcpProxy{
			StatPrefix:       name,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}
}
