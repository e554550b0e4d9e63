// Package inpod runs ztunnel's in-pod mode: it receives enrolled pods (their network
// namespace and redirection map) from the node agent over the ZDS protocol, opens the
// 15001/15006/15008 listeners inside each pod's namespace, registers them for eBPF
// redirection, and runs one proxy per pod until the pod is removed.
package inpod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	"istio.io/istio/pkg/zdsapi"

	inpodnet "github.com/ambitmesh/ambit/pkg/inpod"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/ztunnel/proxy"
)

// ErrNotRunning is returned by AddWorkload before Run has started.
var ErrNotRunning = errors.New("in-pod manager not running")

// Manager implements zds.Handler.
type Manager struct {
	Proxy       proxy.Config
	TrustDomain string
	Logger      *slog.Logger

	mu      sync.Mutex
	running bool // between Run's start and end
	wg      sync.WaitGroup
	pods    map[string]*podState
}

type podState struct {
	pod    proxy.Pod
	ls     proxy.Listeners
	cancel context.CancelFunc
	done   chan struct{}
	netns  *inpodnet.Netns
}

// PodInfo describes a running in-pod proxy, for config_dump.
type PodInfo struct {
	UID       string `json:"uid"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	IP        string `json:"ip"`
	Identity  string `json:"identity"`
}

// Run makes the manager accept workloads and blocks until ctx ends; then it stops every
// pod proxy and waits for them.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.running = true
	if m.pods == nil {
		m.pods = map[string]*podState{}
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.running = false
	for uid, ps := range m.pods {
		ps.cancel()
		delete(m.pods, uid)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// AddWorkload starts serving an enrolled pod. It returns only after the listeners are
// open and registered for redirection, so the node agent's ack means traffic is
// captured. The fds are owned by the manager from here on. A pod already served keeps
// its proxy (a replayed snapshot after reconnecting to the agent).
func (m *Manager) AddWorkload(uid string, info *zdsapi.WorkloadInfo, netnsFile, sockmapFile *os.File) (err error) {
	defer func() {
		if sockmapFile != nil {
			sockmapFile.Close()
		}
	}()
	m.mu.Lock()
	running := m.running
	existing := m.pods[uid]
	m.mu.Unlock()
	if !running {
		netnsFile.Close()
		return ErrNotRunning
	}
	if existing != nil {
		// A replay (agent or ztunnel reconnect): keep the proxy, but put its listeners
		// in the map the agent sent now, which may have been re-created.
		netnsFile.Close()
		if sockmapFile != nil {
			return register(sockmapFile, existing.ls)
		}
		return nil
	}
	if info == nil {
		netnsFile.Close()
		return fmt.Errorf("add workload %s: missing workload info", uid)
	}
	ns := inpodnet.NetnsFromFile(netnsFile)
	ps, ls, err := m.open(uid, info, ns, sockmapFile)
	if err != nil {
		ns.Close()
		return fmt.Errorf("add workload %s/%s: %w", info.GetNamespace(), info.GetName(), err)
	}
	if !m.start(uid, ps, ls) {
		closeListeners(ls)
		ns.Close()
		return ErrNotRunning
	}
	m.Logger.Info("pod enrolled in ztunnel", "uid", uid, "pod", info.GetNamespace()+"/"+info.GetName(), "ip", ps.pod.IP)
	return nil
}

func (m *Manager) open(uid string, info *zdsapi.WorkloadInfo, ns *inpodnet.Netns, sockmapFile *os.File) (*podState, proxy.Listeners, error) {
	ip, err := podIP(ns)
	if err != nil {
		return nil, proxy.Listeners{}, err
	}
	sa := info.GetServiceAccount()
	if sa == "" {
		sa = "default"
	}
	ps := &podState{netns: ns, pod: proxy.Pod{
		UID: uid, Name: info.GetName(), Namespace: info.GetNamespace(), IP: ip, Netns: ns,
		Identity: spiffe.Identity{TrustDomain: m.TrustDomain, Namespace: info.GetNamespace(), ServiceAccount: sa},
	}}
	ls, err := listen(ns)
	if err != nil {
		return nil, proxy.Listeners{}, err
	}
	ps.ls = ls
	if sockmapFile != nil {
		if err := register(sockmapFile, ls); err != nil {
			closeListeners(ls)
			return nil, proxy.Listeners{}, err
		}
	}
	return ps, ls, nil
}

// start runs the pod's proxy until DelWorkload, Reconcile or the end of Run cancels it.
// It reports false when Run has already ended.
func (m *Manager) start(uid string, ps *podState, ls proxy.Listeners) bool {
	pctx, cancel := context.WithCancel(context.Background())
	ps.cancel, ps.done = cancel, make(chan struct{})
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running {
		cancel()
		return false
	}
	m.pods[uid] = ps
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(ps.done)
		defer ps.netns.Close()
		if err := proxy.New(m.Proxy, ps.pod).Run(pctx, ls); err != nil {
			m.Logger.Error("pod proxy stopped", "uid", uid, "err", err)
		}
	}()
	return true
}

// DelWorkload stops serving a pod and waits for its proxy to end.
func (m *Manager) DelWorkload(uid string) error {
	m.mu.Lock()
	ps := m.pods[uid]
	delete(m.pods, uid)
	m.mu.Unlock()
	if ps == nil {
		return nil
	}
	ps.cancel()
	<-ps.done
	m.Logger.Info("pod removed from ztunnel", "uid", uid)
	return nil
}

// Reconcile removes every pod not in keep (after the agent replayed its snapshot).
func (m *Manager) Reconcile(keep map[string]bool) error {
	m.mu.Lock()
	var gone []string
	for uid := range m.pods {
		if !keep[uid] {
			gone = append(gone, uid)
		}
	}
	m.mu.Unlock()
	for _, uid := range gone {
		m.DelWorkload(uid)
	}
	return nil
}

// Pods lists the pods being served, sorted by namespace/name.
func (m *Manager) Pods() []PodInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PodInfo, 0, len(m.pods))
	for uid, ps := range m.pods {
		out = append(out, PodInfo{UID: uid, Name: ps.pod.Name, Namespace: ps.pod.Namespace,
			IP: ps.pod.IP.String(), Identity: ps.pod.Identity.String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

func listen(ns *inpodnet.Netns) (proxy.Listeners, error) {
	var ls proxy.Listeners
	var err error
	if ls.Outbound, err = ns.Listen(wire.PortOutbound, true); err != nil {
		return ls, fmt.Errorf("listen outbound: %w", err)
	}
	if ls.Inbound, err = ns.Listen(wire.PortInbound, false); err != nil {
		ls.Outbound.Close()
		return proxy.Listeners{}, fmt.Errorf("listen inbound: %w", err)
	}
	if ls.HBONE, err = ns.Listen(wire.PortHBONE, false); err != nil {
		ls.Outbound.Close()
		ls.Inbound.Close()
		return proxy.Listeners{}, fmt.Errorf("listen hbone: %w", err)
	}
	return ls, nil
}

func closeListeners(ls proxy.Listeners) {
	for _, l := range []net.Listener{ls.Outbound, ls.Inbound, ls.HBONE} {
		if l != nil {
			l.Close()
		}
	}
}

func register(sockmapFile *os.File, ls proxy.Listeners) error {
	fd, err := unix.Dup(int(sockmapFile.Fd()))
	if err != nil {
		return fmt.Errorf("open redirection map: %w", err)
	}
	m, err := ebpf.NewMapFromFD(fd) // owns fd from here
	if err != nil {
		return fmt.Errorf("open redirection map: %w", err)
	}
	defer m.Close()
	return inpodnet.RegisterListeners(m, ls.Outbound, ls.Inbound)
}

// podIP finds the pod's IPv4 address on its non-loopback interfaces.
func podIP(ns *inpodnet.Netns) (netip.Addr, error) {
	var ip netip.Addr
	err := ns.Do(func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok && !pn.IP.IsLoopback() && pn.IP.To4() != nil {
				ip, _ = netip.AddrFromSlice(pn.IP.To4())
				return nil
			}
		}
		return errors.New("no IPv4 address")
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("pod ip: %w", err)
	}
	return ip, nil
}
