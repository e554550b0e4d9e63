package model

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/istiod-lite/policy"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
	"istio.io/istio/pkg/workloadapi"
	corev1 "k8s.io/api/core/v1"
)

// Labels Istio reads for canonical service names and workload names.
const (
	labelCanonicalName     = "service.istio.io/canonical-name"
	labelCanonicalRevision = "service.istio.io/canonical-revision"
	labelWorkloadName      = "service.istio.io/workload-name"
	labelPodTemplateHash   = "pod-template-hash"
)

// builder is the context of one Build: the options, the snapshot's namespaces, the
// policy set and, computed on first use per namespace, an index of the services that
// select pods.
type builder struct {
	o          Options
	namespaces map[string]*corev1.Namespace
	services   map[string][]*corev1.Service // by namespace, snapshot order
	policies   *policy.Set
	selecting  map[string]*selectorIndex // by namespace, lazily
	waypoints  waypointTable
}

// selectingService is a Service that gives its selected pods a services entry: it has a
// cluster IP and a non-empty selector.
type selectingService struct {
	svc      *corev1.Service
	name     string      // "<ns>/<hostname>"
	selector [][2]string // key, value; sorted by key
}

// selectorIndex finds a namespace's selecting services for a pod without testing every
// selector: services are grouped by their selector's first key and that key's value, so
// a pod is tested only against the services whose first pair it carries.
type selectorIndex struct {
	keys []string                                  // distinct first keys, sorted
	by   map[string]map[string][]*selectingService // first key -> value -> services
}

func newBuilder(s *kubefile.Snapshot, o Options, policies *policy.Set, waypoints waypointTable) *builder {
	b := &builder{
		o:          o,
		waypoints:  waypoints,
		namespaces: make(map[string]*corev1.Namespace, len(s.Namespaces)),
		services:   map[string][]*corev1.Service{},
		policies:   policies,
		selecting:  map[string]*selectorIndex{},
	}
	for _, ns := range s.Namespaces {
		b.namespaces[ns.Name] = ns
	}
	for _, svc := range s.Services {
		b.services[svc.Namespace] = append(b.services[svc.Namespace], svc)
	}
	return b
}

// selectorIndexOf returns the index of the namespace's selecting services, building it
// once per Build.
func (b *builder) selectorIndexOf(namespace string) *selectorIndex {
	if idx, ok := b.selecting[namespace]; ok {
		return idx
	}
	idx := &selectorIndex{by: map[string]map[string][]*selectingService{}}
	for _, svc := range b.services[namespace] {
		if len(svc.Spec.Selector) == 0 || !servesPods(svc) {
			continue
		}
		sel := &selectingService{svc: svc, name: ServiceName(svc.Namespace, b.hostname(svc))}
		for k, v := range svc.Spec.Selector {
			sel.selector = append(sel.selector, [2]string{k, v})
		}
		slices.SortFunc(sel.selector, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		first := sel.selector[0]
		if idx.by[first[0]] == nil {
			idx.by[first[0]] = map[string][]*selectingService{}
			idx.keys = append(idx.keys, first[0])
		}
		idx.by[first[0]][first[1]] = append(idx.by[first[0]][first[1]], sel)
	}
	slices.Sort(idx.keys)
	b.selecting[namespace] = idx
	return idx
}

// matching calls fn for every indexed service whose selector the labels satisfy, in
// first-key order then snapshot order.
func (idx *selectorIndex) matching(podLabels map[string]string, fn func(*selectingService)) {
	for _, k := range idx.keys {
		v, ok := podLabels[k]
		if !ok {
			continue
		}
		for _, sel := range idx.by[k][v] {
			if selectsPairs(sel.selector, podLabels) {
				fn(sel)
			}
		}
	}
}

// enrolled applies Istio's ambient enrolment rule to a pod.
func (b *builder) enrolled(pod *corev1.Pod) bool {
	if pod.Spec.HostNetwork {
		return false
	}
	switch pod.Labels[wire.LabelDataplaneMode] {
	case wire.DataplaneModeNone:
		return false
	case wire.DataplaneModeAmbient:
		return true
	}
	ns := b.namespaces[pod.Namespace]
	return ns != nil && ns.Labels[wire.LabelDataplaneMode] == wire.DataplaneModeAmbient
}

// workload builds the Workload of a pod, or nil when the pod has no usable IP.
func (b *builder) workload(pod *corev1.Pod) *workloadapi.Workload {
	addrs := podAddresses(pod)
	if len(addrs) == 0 {
		return nil
	}
	name := workloadName(pod)
	w := &workloadapi.Workload{
		Uid:               WorkloadUID(b.o.ClusterID, pod.Namespace, pod.Name),
		Name:              pod.Name,
		Namespace:         pod.Namespace,
		Addresses:         addrs,
		TrustDomain:       b.o.TrustDomain,
		ServiceAccount:    serviceAccount(pod),
		Node:              pod.Spec.NodeName,
		ClusterId:         b.o.ClusterID,
		WorkloadType:      workloadapi.WorkloadType_POD,
		WorkloadName:      name,
		CanonicalName:     firstLabel(pod.Labels, name, labelCanonicalName, "app.kubernetes.io/name", "app"),
		CanonicalRevision: firstLabel(pod.Labels, "latest", labelCanonicalRevision, "app.kubernetes.io/version", "version"),
		Status:            podStatus(pod),
		Services:          b.workloadServices(pod),
		// As Istio: selector-scoped AuthorizationPolicies, sorted, then the
		// PeerAuthentication-derived policy, for every pod, enrolled or not.
		AuthorizationPolicies: b.policies.PoliciesFor(pod.Namespace, pod.Labels),
		// istio.io/use-waypoint on the pod or its namespace, for a waypoint that serves
		// workload-addressed traffic.
		Waypoint: b.waypointAddress(pod.Namespace, pod.Labels, l7.WorkloadTraffic),
	}
	if pod.Spec.HostNetwork {
		w.NetworkMode = workloadapi.NetworkMode_HOST_NETWORK
	} else if b.enrolled(pod) {
		w.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
	}
	return w
}

// podAddresses returns status.podIPs (or status.podIP) as 4- or 16-byte slices. A pod
// with any unparsable IP gets none, so it is left out, as Istio does.
func podAddresses(pod *corev1.Pod) [][]byte {
	ips := make([]string, 0, 2)
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
	}
	out := make([][]byte, 0, len(ips))
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil
		}
		out = append(out, ip.Unmap().AsSlice())
	}
	return out
}

// isTerminal reports a pod that has finished (phase Succeeded or Failed); Istio drops
// those from WDS.
func isTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// podStatus is HEALTHY unless the pod is not running (a phase other than Running or
// unset), reports Ready=False, or is being deleted. Unlike Istio, a pod with no Ready
// condition counts as healthy: hand-written snapshots rarely carry conditions.
func podStatus(pod *corev1.Pod) workloadapi.WorkloadStatus {
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodRunning {
		return workloadapi.WorkloadStatus_UNHEALTHY
	}
	if pod.DeletionTimestamp != nil {
		return workloadapi.WorkloadStatus_UNHEALTHY
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
			return workloadapi.WorkloadStatus_UNHEALTHY
		}
	}
	return workloadapi.WorkloadStatus_HEALTHY
}

func serviceAccount(pod *corev1.Pod) string {
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		return sa
	}
	return "default"
}

// workloadName follows Istio's heuristic: the service.istio.io/workload-name label, else
// the Deployment behind a ReplicaSet controller (the ReplicaSet name without its
// pod-template-hash), else another controller's name; a pod with no controller is named
// by its "app" label, else its own name.
func workloadName(pod *corev1.Pod) string {
	if wn := pod.Labels[labelWorkloadName]; wn != "" {
		return wn
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller || ref.Name == "" {
			continue
		}
		if hash := pod.Labels[labelPodTemplateHash]; ref.Kind == "ReplicaSet" && hash != "" {
			if n, ok := trimSuffix(ref.Name, "-"+hash); ok {
				return n
			}
		}
		return ref.Name
	}
	return firstLabel(pod.Labels, pod.Name, "app")
}

func trimSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// firstLabel returns the value of the first present, non-empty label among keys, else def.
func firstLabel(l map[string]string, def string, keys ...string) string {
	for _, k := range keys {
		if v := l[k]; v != "" {
			return v
		}
	}
	return def
}

// workloadServices maps "<ns>/<hostname>" to the port mappings of every service in the
// pod's namespace whose non-empty selector matches the pod's labels.
func (b *builder) workloadServices(pod *corev1.Pod) map[string]*workloadapi.PortList {
	out := map[string]*workloadapi.PortList{}
	b.selectorIndexOf(pod.Namespace).matching(pod.Labels, func(sel *selectingService) {
		pl := &workloadapi.PortList{}
		for _, p := range sel.svc.Spec.Ports {
			if target, ok := resolveTargetPort(p, pod); ok {
				pl.Ports = append(pl.Ports, &workloadapi.Port{ServicePort: uint32(p.Port), TargetPort: target})
			}
		}
		out[sel.name] = pl
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// resolveTargetPort gives the pod port a service port forwards to: the numeric target
// port (the service port when unset), or the TCP port with the target's name among the
// pod's containers, then its native sidecars (init containers with restartPolicy
// Always), as Istio's ambient index does. A port with no protocol counts as TCP, the API
// server's default. An unresolvable name reports false: that port is not served by this
// pod.
func resolveTargetPort(p corev1.ServicePort, pod *corev1.Pod) (uint32, bool) {
	tp := p.TargetPort
	if tp.StrVal == "" {
		if tp.IntVal > 0 && tp.IntVal <= 65535 {
			return uint32(tp.IntVal), true
		}
		return uint32(p.Port), p.Port > 0 && p.Port <= 65535
	}
	containers := slices.Clone(pod.Spec.Containers)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(containers, c)
		}
	}
	for _, c := range containers {
		for _, cp := range c.Ports {
			tcp := cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP
			if cp.Name == tp.StrVal && tcp && cp.ContainerPort > 0 && cp.ContainerPort <= 65535 {
				return uint32(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// selectsPairs reports whether every selector label is on the pod with the same value.
func selectsPairs(selector [][2]string, podLabels map[string]string) bool {
	for _, kv := range selector {
		if got, ok := podLabels[kv[0]]; !ok || got != kv[1] {
			return false
		}
	}
	return true
}
