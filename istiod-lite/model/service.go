package model

import (
	"net/netip"

	"istio.io/istio/pkg/workloadapi"
	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// hostname is the service's cluster DNS name, <name>.<ns>.svc.<suffix>.
func (b *builder) hostname(svc *corev1.Service) string {
	return svc.Name + "." + svc.Namespace + ".svc." + b.o.DomainSuffix
}

// servesPods reports whether a Service becomes a WDS Service: it must have a cluster IP
// (not headless "None", not ExternalName).
func servesPods(svc *corev1.Service) bool {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	return len(serviceIPs(svc)) > 0
}

// serviceIPs returns spec.clusterIPs (or spec.clusterIP) that parse, skipping "None".
func serviceIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		if s == corev1.ClusterIPNone {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			continue
		}
		out = append(out, ip.Unmap())
	}
	return out
}

// service builds the WDS Service of a Kubernetes Service, or nil when it has no cluster
// IP. A named target port becomes target_port 0: each workload's services map carries the
// port it resolves to, as in Istio.
func (b *builder) service(svc *corev1.Service) *workloadapi.Service {
	if !servesPods(svc) {
		return nil
	}
	out := &workloadapi.Service{
		Name:      svc.Name,
		Namespace: svc.Namespace,
		Hostname:  b.hostname(svc),
	}
	if !b.isWaypointService(svc) {
		out.Waypoint = b.waypointAddress(svc.Namespace, svc.Labels, l7.ServiceTraffic)
	}
	for _, ip := range serviceIPs(svc) {
		out.Addresses = append(out.Addresses, &workloadapi.NetworkAddress{Address: ip.AsSlice()})
	}
	for _, p := range svc.Spec.Ports {
		if p.Port <= 0 || p.Port > 65535 {
			continue
		}
		port := &workloadapi.Port{ServicePort: uint32(p.Port)}
		switch tp := p.TargetPort; {
		case tp.StrVal != "":
			// named: resolved per workload
		case tp.IntVal > 0 && tp.IntVal <= 65535:
			port.TargetPort = uint32(tp.IntVal)
		default:
			port.TargetPort = uint32(p.Port)
		}
		out.Ports = append(out.Ports, port)
	}
	return out
}
