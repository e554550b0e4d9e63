package l7

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// endpoints are the ready pods svc selects (and subset, when not nil, also selects)
// with the target port of the service port numbered port: sorted by IP then port.
func (ix *index) endpoints(svc *corev1.Service, port uint32, subset map[string]string) []Endpoint {
	sp, ok := servicePort(svc, port)
	if !ok || len(svc.Spec.Selector) == 0 {
		return nil
	}
	var out []Endpoint
	for _, pod := range ix.pods[svc.Namespace] {
		if !podReady(pod) || !selects(svc.Spec.Selector, pod.Labels) || !selects(subset, pod.Labels) {
			continue
		}
		ip, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil || ip.Zone() != "" {
			continue
		}
		target := numericTargetPort(sp)
		if target == 0 {
			if target = containerPort(pod, sp.TargetPort.StrVal); target == 0 {
				continue
			}
		}
		out = append(out, Endpoint{IP: ip.Unmap(), Port: target})
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port)) })
	return slices.Compact(out)
}

// podReady reports whether a pod can take traffic: running, PodReady True, an IP, and
// not being deleted.
func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerPort resolves a named target port on a pod's containers (TCP ports only);
// 0 when no container has it.
func containerPort(pod *corev1.Pod, name string) uint32 {
	if name == "" {
		return 0
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.Name == name && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) &&
					p.ContainerPort > 0 && p.ContainerPort <= 65535 {
					return uint32(p.ContainerPort)
				}
			}
		}
	}
	return 0
}
