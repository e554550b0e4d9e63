package l7

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// bindServices finds the services each waypoint serves (F-WP-2): UseWaypoint names an
// existing waypoint that serves service traffic, and the service has a cluster IP.
func (ix *index) bindServices() {
	for _, svc := range ix.serviceList {
		wp, ok := UseWaypoint(svc.Namespace, svc.Labels, ix.nsLabels[svc.Namespace])
		if !ok {
			continue
		}
		gw := ix.gateways[wp]
		if gw == nil || !Serves(gw.Labels, ServiceTraffic) {
			continue
		}
		vips := serviceVIPs(svc)
		if len(vips) == 0 {
			continue
		}
		b := &boundService{
			waypoint: wp,
			svc:      svc,
			model: &Service{
				Namespace: svc.Namespace,
				Name:      svc.Name,
				Hostname:  ix.hostname(svc.Namespace, svc.Name),
				VIPs:      vips,
				Ports:     servicePorts(svc),
			},
			entries:  map[uint32][]routeEntry{},
			vsRoutes: map[uint32][]Route{},
		}
		ix.bound[key(svc)] = b
		ix.boundList = append(ix.boundList, b)
	}
}

// serviceVIPs are the service's cluster IPs ("None" and unparsable values skipped),
// sorted and without duplicates.
func serviceVIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// servicePorts are the service's TCP ports (valid numbers, first of duplicates), sorted
// by number.
func servicePorts(svc *corev1.Service) []Port {
	var out []Port
	for _, p := range svc.Spec.Ports {
		if !isTCP(p) || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		if slices.ContainsFunc(out, func(q Port) bool { return q.Number == uint32(p.Port) }) {
			continue
		}
		out = append(out, Port{
			Number:     uint32(p.Port),
			Name:       p.Name,
			TargetPort: numericTargetPort(p),
			Protocol:   portProtocol(p),
		})
	}
	slices.SortFunc(out, func(a, b Port) int { return int(a.Number) - int(b.Number) })
	return out
}

func isTCP(p corev1.ServicePort) bool {
	return p.Protocol == "" || p.Protocol == corev1.ProtocolTCP
}

// numericTargetPort is the port's numeric target port: the port itself when unset, 0
// when named (resolved per pod) or out of range.
func numericTargetPort(p corev1.ServicePort) uint32 {
	tp := p.TargetPort
	switch {
	case tp.StrVal != "" || tp.IntVal < 0 || tp.IntVal > 65535:
		return 0
	case tp.IntVal == 0:
		return uint32(p.Port)
	default:
		return uint32(tp.IntVal)
	}
}

// servicePort finds the TCP port numbered n on svc.
func servicePort(svc *corev1.Service, n uint32) (corev1.ServicePort, bool) {
	for _, p := range svc.Spec.Ports {
		if isTCP(p) && p.Port > 0 && uint32(p.Port) == n {
			return p, true
		}
	}
	return corev1.ServicePort{}, false
}

// portProtocol infers a port's protocol as Istio does: appProtocol when set (http ->
// HTTP; http2, grpc, kubernetes.io/h2c -> HTTP2; anything else TCP), else the port
// name's part before the first '-' (http -> HTTP; http2, grpc -> HTTP2, except grpc-web
// -> HTTP; anything else TCP).
func portProtocol(p corev1.ServicePort) Protocol {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		switch strings.ToLower(*p.AppProtocol) {
		case "http", "grpc-web":
			return ProtocolHTTP
		case "http2", "grpc", "kubernetes.io/h2c", "h2c":
			return ProtocolHTTP2
		}
		return ProtocolTCP
	}
	name := strings.ToLower(p.Name)
	if strings.HasPrefix(name, "grpc-web") {
		return ProtocolHTTP
	}
	prefix, _, _ := strings.Cut(name, "-")
	switch prefix {
	case "http":
		return ProtocolHTTP
	case "http2", "grpc":
		return ProtocolHTTP2
	}
	return ProtocolTCP
}

// isHTTP reports whether the waypoint processes a port's traffic as HTTP.
func isHTTP(p Protocol) bool { return p == ProtocolHTTP || p == ProtocolHTTP2 }
