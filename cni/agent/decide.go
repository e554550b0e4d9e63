package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Decision is the outcome of the enrolment rules for one pod, with a reason for logs.
type Decision struct {
	Enrol  bool
	Reason string
}

// Decide applies Istio ambient's enrolment rules (F-ENROL-1): hostNetwork pods never;
// a pod label istio.io/dataplane-mode=none opts out; a pod label =ambient opts in; else
// the namespace label istio.io/dataplane-mode=ambient enrols. A pod missing from the
// config (pod nil) is not enrolled: without it the agent knows no identity (fail closed).
func Decide(ns *corev1.Namespace, pod *corev1.Pod) Decision {
	if pod == nil {
		return Decision{false, "pod not in config"}
	}
	if pod.Spec.HostNetwork {
		return Decision{false, "hostNetwork"}
	}
	switch pod.Labels[wire.LabelDataplaneMode] {
	case wire.DataplaneModeNone:
		return Decision{false, "pod opted out"}
	case wire.DataplaneModeAmbient:
		return Decision{true, "pod label"}
	}
	if ns != nil && ns.Labels[wire.LabelDataplaneMode] == wire.DataplaneModeAmbient {
		return Decision{true, "namespace label"}
	}
	return Decision{false, "not ambient"}
}

// configPod finds the config pod for a registered pod: by uid first, then by
// namespace/name when the config pod has no uid or the same one (a different uid is a
// different pod instance with the same name).
func configPod(snap *kubefile.Snapshot, uid, namespace, name string) *corev1.Pod {
	if snap == nil {
		return nil
	}
	for _, p := range snap.Pods {
		if string(p.UID) == uid && uid != "" {
			return p
		}
	}
	p := snap.Pod(namespace, name)
	if p != nil && (p.UID == "" || string(p.UID) == uid) {
		return p
	}
	return nil
}

// serviceAccount returns the pod's service account, "default" when unset (as the
// Kubernetes API server defaults it).
func serviceAccount(p *corev1.Pod) string {
	if p == nil || p.Spec.ServiceAccountName == "" {
		return "default"
	}
	return p.Spec.ServiceAccountName
}

// ErrCgroupNotFound means no cgroup directory under the root matches the pod uid.
var ErrCgroupNotFound = errors.New("pod cgroup not found")

// maxCgroupDepth bounds the search below the cgroup root (kubepods/burstable/pod<uid>
// is depth 3; systemd slices nest a little deeper).
const maxCgroupDepth = 6

// FindCgroup returns the pod's cgroup v2 directory under root: a directory named
// "pod<uid>" (kubelet cgroupfs driver) or one ending in ".slice" whose name contains
// "pod<uid with - replaced by _>" (systemd driver, e.g.
// kubepods-besteffort-pod1234_abcd.slice). Errors wrap ErrCgroupNotFound.
func FindCgroup(root, uid string) (string, error) {
	if uid == "" {
		return "", fmt.Errorf("find cgroup: %w: empty uid", ErrCgroupNotFound)
	}
	cgroupfs := "pod" + uid
	systemd := "pod" + strings.ReplaceAll(uid, "-", "_")
	base := strings.Count(filepath.Clean(root), string(filepath.Separator))
	var found string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return nil // unreadable subtree: skip
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == cgroupfs || strings.HasSuffix(name, ".slice") && strings.Contains(name, systemd)) {
			found = path
			return fs.SkipAll
		}
		if strings.Count(path, string(filepath.Separator))-base >= maxCgroupDepth {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find cgroup: %w", err)
	}
	if found == "" {
		return "", fmt.Errorf("find cgroup for pod %s under %s: %w", uid, root, ErrCgroupNotFound)
	}
	return found, nil
}

// HostIPv4s returns the non-loopback IPv4 addresses of the current network namespace:
// the default probe sources (kubelet probes come from the node's own addresses).
func HostIPv4s() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.Is4() && !ip.IsLoopback() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// firstIPv4 returns the first IPv4 address among ips (redirection is IPv4-only).
func firstIPv4(ips []string) (netip.Addr, bool) {
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Unmap().Is4() {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
