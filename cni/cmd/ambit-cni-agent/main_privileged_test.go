package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"istio.io/istio/pkg/zdsapi"

	"github.com/ambitmesh/ambit/cni/agent"
	"github.com/ambitmesh/ambit/cni/agent/podapi"
	"github.com/ambitmesh/ambit/cni/redirect"
	"github.com/ambitmesh/ambit/pkg/inpod/inpodtest"
	"github.com/ambitmesh/ambit/pkg/zds"
)

// mapZtunnel records the type of the SOCKMAP fd each added workload carries.
type mapZtunnel struct {
	mu    sync.Mutex
	types map[string]ebpf.MapType
}

func (z *mapZtunnel) AddWorkload(uid string, _ *zdsapi.WorkloadInfo, netns, sockmap *os.File) error {
	defer netns.Close()
	if sockmap == nil {
		return nil
	}
	defer sockmap.Close()
	m, err := ebpf.NewMapFromFD(int(sockmap.Fd()))
	if err != nil {
		return err
	}
	info, err := m.Info()
	_ = m.Close() // closes the fd it was given; sockmap.Close then fails harmlessly
	if err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.types[uid] = info.Type
	return nil
}

func (z *mapZtunnel) DelWorkload(uid string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.types, uid)
	return nil
}

func (z *mapZtunnel) Reconcile(map[string]bool) error { return nil }

func (z *mapZtunnel) get(uid string) (ebpf.MapType, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	t, ok := z.types[uid]
	return t, ok
}

// TestPrivilegedAgentEnrolsWithRealRedirect runs the agent with the real eBPF
// redirector on a throwaway pod netns and cgroup: a CNI add installs pins and ztunnel
// receives the pod's SOCKMAP; a CNI del removes the pins.
func TestPrivilegedAgentEnrolsWithRealRedirect(t *testing.T) {
	inpodtest.RequireRoot(t)
	const uid = "priv-pod-1"
	pod, cgRoot, pinDir := newPrivPod(t, uid)
	mgr := &redirect.Manager{PinDir: pinDir}
	t.Cleanup(func() { _ = mgr.Unenrol(uid) })

	dir, err := os.MkdirTemp("", "agentp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfgDir := filepath.Join(dir, "cfg")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n  labels:\n    istio.io/dataplane-mode: ambient\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  containers:\n  - name: a\n    image: a\n"
	if err := os.WriteFile(filepath.Join(cfgDir, "c.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := agent.New(agent.Config{NodeName: "node-a", ConfigDir: cfgDir, ZDSSocket: filepath.Join(dir, "zds.sock"),
		CNISocket: filepath.Join(dir, "cni.sock"), CgroupRoot: cgRoot, StateDir: filepath.Join(dir, "state"),
		ProbeSources: []netip.Addr{netip.MustParseAddr("10.250.0.1")}, Redirector: &redirector{m: mgr}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	zt := &mapZtunnel{types: map[string]ebpf.MapType{}}
	for _, r := range []func(context.Context) error{a.Run, (&zds.Client{Path: filepath.Join(dir, "zds.sock"), Handler: zt, Logger: log, MinBackoff: 10 * time.Millisecond}).Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	if err := a.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}

	c := podapi.NewClient(filepath.Join(dir, "cni.sock"), 30*time.Second)
	add := podapi.AddRequest{UID: uid, Name: "web", Namespace: "apps", Netns: pod.Path, IPs: []string{"10.250.0.2"}, ContainerID: "s1"}
	if err := c.Add(ctx, add); err != nil {
		t.Fatalf("add: %v", err)
	}
	if got, _ := mgr.Enrolled(); !slices.Equal(got, []string{uid}) {
		t.Fatalf("pins = %v", got)
	}
	waitFor(t, func() bool { _, ok := zt.get(uid); return ok })
	if typ, _ := zt.get(uid); typ != ebpf.SockMap && typ != ebpf.SockHash {
		t.Fatalf("ztunnel got map type %v, want a sockmap", typ)
	}
	if err := c.Del(ctx, podapi.DelRequest{UID: uid, ContainerID: "s1"}); err != nil {
		t.Fatalf("del: %v", err)
	}
	if got, _ := mgr.Enrolled(); len(got) != 0 {
		t.Fatalf("pins after del = %v", got)
	}
}

// newPrivPod makes a throwaway pod: a netns with eth0 10.250.0.2/24 (both veth ends
// inside), a cgroup root holding kubepods/pod<uid>, and a bpffs pin dir for node-a.
func newPrivPod(t *testing.T, uid string) (pod *inpodtest.NS, cgRoot, pinDir string) {
	t.Helper()
	pod = inpodtest.NewNetns(t)
	h := pod.Handle(t)
	eth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"} // both ends stay in the pod netns
	if err := h.LinkAdd(eth); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.250.0.2/24")
	if err := h.AddrAdd(eth, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	cgRoot = inpodtest.NewCgroup(t)
	podCg := filepath.Join(cgRoot, "kubepods", "pod"+uid)
	if err := os.MkdirAll(podCg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(podCg); _ = os.Remove(filepath.Dir(podCg)) })
	return pod, cgRoot, filepath.Join(inpodtest.NewPinDir(t), "node-a")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
