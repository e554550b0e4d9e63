// Package redirect enrols pods into Ambit's eBPF traffic redirection and removes
// them again (F-ENROL-3, F-PLUS-1: no iptables or nftables). For each pod it loads
// one copy of the programs in bpf/redirect, attaches the sk_lookup program to the
// pod network namespace and the connect4 program to the pod cgroup, installs the
// capture rule and route inside the pod namespace, and pins everything under
// <PinDir>/<pod UID>/ so enrolment survives node agent and ztunnel restarts.
// The mechanics follow shared/spec/redirection.md.
package redirect

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"

	bpfredirect "github.com/ambitmesh/ambit/bpf/redirect"
)

// ErrNotEnrolled is returned (wrapped) by SockMap when a pod has no pins.
var ErrNotEnrolled = errors.New("pod not enrolled")

// ErrInvalidPod is returned (wrapped) when a Pod cannot be enrolled as given.
var ErrInvalidPod = errors.New("invalid pod")

// Pod describes what enrolment needs to know about one pod.
type Pod struct {
	// UID is the Kubernetes pod UID; it names the pin directory, so it must be a
	// plain file name ([A-Za-z0-9._-], not starting with a dot).
	UID string
	// Netns is the path of the pod network namespace, e.g. /run/netns/x or
	// /proc/<pid>/ns/net. It is remembered (as a bpffs symlink) for Unenrol.
	Netns string
	// Cgroup is the absolute path of the pod's cgroup v2 directory; all the pod's
	// containers must live below it.
	Cgroup string
	// IP is the pod's IPv4 address.
	IP netip.Addr
	// ProbeSources are up to 4 IPv4 addresses (node, kubelet) whose connections
	// reach the app without ztunnel, so health probes keep working.
	ProbeSources []netip.Addr
}

// Manager enrols pods. The zero value with PinDir set is ready to use and safe for
// concurrent use. PinDir must be on a bpffs (see MountBPFFS).
type Manager struct {
	// PinDir holds one directory of pins per enrolled pod, e.g. /sys/fs/bpf/ambit/<node>.
	PinDir string

	mu sync.Mutex
	dp datapath // nil: the real kernel
}

func (m *Manager) datapath() datapath {
	if m.dp == nil {
		return kernelDatapath{}
	}
	return m.dp
}

func (m *Manager) podDir(uid string) (string, error) {
	if err := validUID(uid); err != nil {
		return "", err
	}
	if m.PinDir == "" {
		return "", errors.New("redirect manager: PinDir is empty")
	}
	return filepath.Join(m.PinDir, uid), nil
}

// Enrol starts redirecting p's TCP through ztunnel and returns the pod's listener
// SOCKMAP (caller closes it), which ztunnel fills via inpod.RegisterListeners. It is
// idempotent: a pod already enrolled in the same namespace and cgroup keeps its
// programs (existing connections are untouched) and gets its config, rule, route
// and sysctl re-applied; pins left from an older sandbox of the same UID are replaced.
// Capture starts last (connect4 attach), after the rule and route exist; on failure
// everything installed so far is removed. Errors wrap ErrInvalidPod for bad input.
func (m *Manager) Enrol(p Pod) (*ebpf.Map, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	dir, err := m.podDir(p.UID)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dp := m.datapath()
	if err := os.MkdirAll(m.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("enrol %s: create pin dir: %w", p.UID, err)
	}
	current, err := dp.matches(dir, p)
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", p.UID, err)
	}
	if current {
		if err := m.refresh(dp, dir, p); err != nil {
			return nil, fmt.Errorf("enrol %s: %w", p.UID, err)
		}
		return m.openSockMap(dp, p.UID, dir)
	}
	if err := m.teardown(dp, dir); err != nil {
		return nil, fmt.Errorf("enrol %s: remove stale pins: %w", p.UID, err)
	}
	if err := m.install(dp, dir, p); err != nil {
		return nil, fmt.Errorf("enrol %s: %w", p.UID, errors.Join(err, m.teardown(dp, dir)))
	}
	return m.openSockMap(dp, p.UID, dir)
}

// install runs the enrolment steps in an order that never captures a connection
// before the path back to ztunnel exists.
func (m *Manager) install(dp datapath, dir string, p Pod) error {
	if err := dp.installPrograms(dir, p); err != nil {
		return err
	}
	if err := dp.installRouting(dir, p); err != nil {
		return err
	}
	return dp.attachConnect4(dir, p.Cgroup)
}

// refresh re-applies config, routing and capture to a pod whose programs are in
// place; each step is idempotent, so a pod mid-StopCapture is captured again.
func (m *Manager) refresh(dp datapath, dir string, p Pod) error {
	if err := dp.update(dir, p); err != nil {
		return err
	}
	if err := dp.installRouting(dir, p); err != nil {
		return err
	}
	return dp.attachConnect4(dir, p.Cgroup)
}

// StopCapture detaches the pod's connect4 program, so new app connections go out
// directly while captured ones keep flowing through ztunnel. It is the first,
// graceful half of Unenrol: call it, let connections drain, then call Unenrol.
// Unknown pods are not an error.
func (m *Manager) StopCapture(uid string) error {
	dir, err := m.podDir(uid)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.datapath().detachConnect4(dir); err != nil {
		return fmt.Errorf("stop capture %s: %w", uid, err)
	}
	return nil
}

// Unenrol removes the pod's redirection in the graceful order of redirection.md:
// connect4 first (no new captures), then the capture rule and route (when the pod
// namespace still exists), then the sk_lookup link and all pins. Connections still
// captured at that point break, so callers wanting a drain use StopCapture first.
// It is idempotent: an unknown UID is not an error.
func (m *Manager) Unenrol(uid string) error {
	dir, err := m.podDir(uid)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.teardown(m.datapath(), dir); err != nil {
		return fmt.Errorf("unenrol %s: %w", uid, err)
	}
	return nil
}

func (m *Manager) teardown(dp datapath, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := dp.detachConnect4(dir); err != nil {
		return err
	}
	if err := dp.removeRouting(dir); err != nil {
		return err
	}
	return dp.removePrograms(dir)
}

// SockMap re-opens the pinned listener SOCKMAP of an enrolled pod, e.g. after a node
// agent restart; the caller closes it. Errors wrap ErrNotEnrolled when there are no pins.
func (m *Manager) SockMap(uid string) (*ebpf.Map, error) {
	dir, err := m.podDir(uid)
	if err != nil {
		return nil, err
	}
	return m.openSockMap(m.datapath(), uid, dir)
}

func (m *Manager) openSockMap(dp datapath, uid, dir string) (*ebpf.Map, error) {
	sm, err := dp.openSockMap(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open sockmap of %s: %w", uid, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("open sockmap of %s: %w", uid, err)
	}
	return sm, nil
}

// Enrolled lists the UIDs that have a pin directory, sorted, for recovery after a
// node agent restart. A missing PinDir means none.
func (m *Manager) Enrolled() ([]string, error) {
	entries, err := os.ReadDir(m.PinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list enrolled pods: %w", err)
	}
	var uids []string
	for _, e := range entries {
		if e.IsDir() && validUID(e.Name()) == nil {
			uids = append(uids, e.Name())
		}
	}
	return uids, nil
}

func validate(p Pod) error {
	if err := validUID(p.UID); err != nil {
		return err
	}
	switch {
	case !filepath.IsAbs(p.Netns):
		return fmt.Errorf("%w: netns path %q is not absolute", ErrInvalidPod, p.Netns)
	case !filepath.IsAbs(p.Cgroup):
		return fmt.Errorf("%w: cgroup path %q is not absolute", ErrInvalidPod, p.Cgroup)
	case !p.IP.Unmap().Is4() || p.IP.IsUnspecified():
		return fmt.Errorf("%w: pod IP %v is not a usable IPv4 address", ErrInvalidPod, p.IP)
	case len(p.ProbeSources) > bpfredirect.MaxProbeSources:
		return fmt.Errorf("%w: %d probe sources, at most %d", ErrInvalidPod, len(p.ProbeSources), bpfredirect.MaxProbeSources)
	}
	for _, a := range p.ProbeSources {
		if !a.Unmap().Is4() || a.IsUnspecified() {
			return fmt.Errorf("%w: probe source %v is not a usable IPv4 address", ErrInvalidPod, a)
		}
	}
	return nil
}

func validUID(uid string) error {
	if uid == "" || len(uid) > 128 || uid[0] == '.' {
		return fmt.Errorf("%w: uid %q", ErrInvalidPod, uid)
	}
	for _, r := range uid {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("%w: uid %q has character %q", ErrInvalidPod, uid, r)
		}
	}
	return nil
}
