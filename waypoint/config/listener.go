package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/authz"
	"github.com/ambitmesh/ambit/waypoint/route"
)

// buildChains compiles main_internal's filter chains.
func buildChains(l *listenerv3.Listener, tables map[string]*route.Table, opts Options) ([]*Chain, error) {
	res := fmt.Sprintf("listener %q", l.GetName())
	if err := only(res, "", l, "name", "listener_filters", "filter_chains", "internal_listener"); err != nil {
		return nil, err
	}
	if l.GetInternalListener() == nil {
		return nil, invalid(res, "internal_listener", "required")
	}
	if err := only(res, "internal_listener", l.GetInternalListener()); err != nil {
		return nil, err
	}
	lfs := l.GetListenerFilters()
	if len(lfs) != 1 {
		return nil, invalid(res, "listener_filters", "want exactly one (%s)", waypointxds.FilterOriginalDst)
	}
	if err := only(res, "listener_filters[0]", lfs[0], "name", "typed_config"); err != nil {
		return nil, err
	}
	if lfs[0].GetName() != waypointxds.FilterOriginalDst {
		return nil, invalid(res, "listener_filters[0].name", "unsupported listener filter %q", lfs[0].GetName())
	}
	od, err := unpack(res, "listener_filters[0]", lfs[0].GetTypedConfig(), &origdstv3.OriginalDst{})
	if err != nil {
		return nil, err
	}
	if err := only(res, "listener_filters[0].typed_config", od); err != nil {
		return nil, err
	}
	chains := make([]*Chain, 0, len(l.GetFilterChains()))
	seen := map[string]bool{}
	for i, fc := range l.GetFilterChains() {
		ch, err := buildChain(res, fmt.Sprintf("filter_chains[%d]", i), fc, tables, opts)
		if err != nil {
			return nil, err
		}
		if seen[ch.Name] {
			return nil, invalid(res, fmt.Sprintf("filter_chains[%d].name", i), "duplicate chain %q", ch.Name)
		}
		seen[ch.Name] = true
		chains = append(chains, ch)
	}
	return chains, nil
}

// parseChainName splits "inbound-vip|<port>|<http|tcp>|<FQDN>".
func parseChainName(name string) (port uint32, kind, fqdn string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "inbound-vip" || (parts[2] != "http" && parts[2] != "tcp") || parts[3] == "" {
		return 0, "", "", false
	}
	p, err := strconv.ParseUint(parts[1], 10, 16)
	if err != nil || p == 0 {
		return 0, "", "", false
	}
	return uint32(p), parts[2], parts[3], true
}

func buildChain(res, path string, fc *listenerv3.FilterChain, tables map[string]*route.Table, opts Options) (*Chain, error) {
	if err := only(res, path, fc, "name", "filter_chain_match", "filters"); err != nil {
		return nil, err
	}
	port, kind, fqdn, ok := parseChainName(fc.GetName())
	if !ok {
		return nil, invalid(res, path+".name", "want \"inbound-vip|<port>|<http|tcp>|<fqdn>\", got %q", fc.GetName())
	}
	ch := &Chain{Name: fc.GetName(), Service: fqdn, Port: port}
	m := fc.GetFilterChainMatch()
	mp := path + ".filter_chain_match"
	if err := only(res, mp, m, "destination_port", "prefix_ranges"); err != nil {
		return nil, err
	}
	if m.GetDestinationPort().GetValue() != port {
		return nil, invalid(res, mp+".destination_port", "got %d, want %d from the chain name", m.GetDestinationPort().GetValue(), port)
	}
	if len(m.GetPrefixRanges()) == 0 {
		return nil, invalid(res, mp+".prefix_ranges", "at least one VIP required")
	}
	for j, pr := range m.GetPrefixRanges() {
		pp := fmt.Sprintf("%s.prefix_ranges[%d]", mp, j)
		if err := only(res, pp, pr, "address_prefix", "prefix_len"); err != nil {
			return nil, err
		}
		a, err := netip.ParseAddr(pr.GetAddressPrefix())
		if err != nil {
			return nil, invalid(res, pp+".address_prefix", "%v", err)
		}
		if int(pr.GetPrefixLen().GetValue()) != a.BitLen() {
			return nil, invalid(res, pp+".prefix_len", "got %d, want %d (one VIP)", pr.GetPrefixLen().GetValue(), a.BitLen())
		}
		ch.Prefixes = append(ch.Prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(fc.GetFilters()) != 1 {
		return nil, invalid(res, path+".filters", "want exactly one network filter")
	}
	f := fc.GetFilters()[0]
	fp := path + ".filters[0]"
	if err := only(res, fp, f, "name", "typed_config"); err != nil {
		return nil, err
	}
	switch {
	case kind == "http" && f.GetName() == waypointxds.FilterHTTPConnectionManager:
		h, err := buildHCM(res, fp+".typed_config", f, tables, opts)
		if err != nil {
			return nil, err
		}
		ch.HTTP = h
	case kind == "tcp" && f.GetName() == waypointxds.FilterTCPProxy:
		tp, err := unpack(res, fp, f.GetTypedConfig(), &tcpproxyv3.TcpProxy{})
		if err != nil {
			return nil, err
		}
		if err := only(res, fp+".typed_config", tp, "stat_prefix", "cluster"); err != nil {
			return nil, err
		}
		if tp.GetCluster() == "" {
			return nil, invalid(res, fp+".typed_config.cluster", "required")
		}
		ch.TCPCluster = tp.GetCluster()
	default:
		return nil, invalid(res, fp+".name", "filter %q not supported on a %s chain", f.GetName(), kind)
	}
	return ch, nil
}

// buildHCM compiles the HTTP connection manager of an HTTP chain.
func buildHCM(res, path string, f *listenerv3.Filter, tables map[string]*route.Table, opts Options) (*HTTP, error) {
	hcm, err := unpack(res, path, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	if err != nil {
		return nil, err
	}
	if err := only(res, path, hcm, "stat_prefix", "codec_type", "rds", "http_filters", "access_log"); err != nil {
		return nil, err
	}
	if hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return nil, invalid(res, path+".codec_type", "only AUTO is supported")
	}
	rds := hcm.GetRds()
	if rds == nil {
		return nil, invalid(res, path+".rds", "required")
	}
	if err := only(res, path+".rds", rds, "config_source", "route_config_name"); err != nil {
		return nil, err
	}
	if err := sameShape(res+": "+path+".rds.config_source", rds.GetConfigSource(), waypointxds.ADSConfigSource()); err != nil {
		return nil, err
	}
	h := &HTTP{RouteName: rds.GetRouteConfigName(), Routes: tables[rds.GetRouteConfigName()]}
	if h.RouteName == "" {
		return nil, invalid(res, path+".rds.route_config_name", "required")
	}
	if err := buildHTTPFilters(res, path, hcm.GetHttpFilters(), h); err != nil {
		return nil, err
	}
	if len(hcm.GetAccessLog()) > 0 {
		lg, err := accesslog.Compile(hcm.GetAccessLog(), opts.AccessLog)
		if err != nil {
			return nil, fmt.Errorf("%s: %s.access_log: %w", res, path, err)
		}
		h.Log = lg
	}
	return h, nil
}

// buildHTTPFilters accepts rbac filters, then at most one fault filter, then the
// router, last.
func buildHTTPFilters(res, path string, filters []*hcmv3.HttpFilter, h *HTTP) error {
	if len(filters) == 0 || filters[len(filters)-1].GetName() != waypointxds.FilterRouter {
		return invalid(res, path+".http_filters", "the last filter must be %s", waypointxds.FilterRouter)
	}
	stage := 0 // 0: rbac, 1: fault seen, 2: router seen
	for i, hf := range filters {
		fp := fmt.Sprintf("%s.http_filters[%d]", path, i)
		if err := only(res, fp, hf, "name", "typed_config"); err != nil {
			return err
		}
		switch hf.GetName() {
		case waypointxds.FilterRBAC:
			if stage > 0 {
				return invalid(res, fp, "%s after %s is not supported", waypointxds.FilterRBAC, waypointxds.FilterFault)
			}
			r, err := unpack(res, fp, hf.GetTypedConfig(), &rbacv3filter.RBAC{})
			if err != nil {
				return err
			}
			az, err := authz.Compile(r)
			if err != nil {
				return fmt.Errorf("%s: %s.typed_config: %w", res, fp, err)
			}
			h.RBAC = append(h.RBAC, az)
		case FilterFault:
			if stage > 0 {
				return invalid(res, fp, "only one %s is supported", waypointxds.FilterFault)
			}
			fl, err := unpack(res, fp, hf.GetTypedConfig(), &faultv3.HTTPFault{})
			if err != nil {
				return err
			}
			if err := only(res, fp+".typed_config", fl); err != nil {
				return err
			}
			h.Fault, stage = true, 1
		case waypointxds.FilterRouter:
			if i != len(filters)-1 {
				return invalid(res, fp, "%s must be last", waypointxds.FilterRouter)
			}
			rt, err := unpack(res, fp, hf.GetTypedConfig(), &routerv3.Router{})
			if err != nil {
				return err
			}
			if err := only(res, fp+".typed_config", rt); err != nil {
				return err
			}
			stage = 2
		default:
			return invalid(res, fp+".name", "unsupported http filter %q", hf.GetName())
		}
	}
	return nil
}
