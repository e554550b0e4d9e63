// Package inpodtest holds helpers for privileged tests of the in-pod redirection:
// creating throwaway network namespaces, cgroups and bpffs pin directories that clean
// themselves up, and checking that no iptables/nftables state exists in a namespace.
package inpodtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/pkg/inpod"
)

// RequireRoot skips t with a clear message unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)")
	}
}

// RandomName returns prefix followed by 8 random hex characters.
func RandomName(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// NS is a named test network namespace (/run/netns/<Name>) with lo up.
type NS struct {
	*inpod.Netns
	Name string
	Path string
}

// Handle returns a netlink handle operating inside ns; it is closed at test cleanup.
func (ns *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns.Name, err)
	}
	t.Cleanup(h.Close)
	return h
}

// NewNetns creates a named network namespace with lo up and registers its deletion
// with t.Cleanup.
func NewNetns(t testing.TB) *NS {
	t.Helper()
	name := RandomName("ambit-test-")
	errc := make(chan error, 1)
	go func() {
		// The thread switches namespaces and is never unlocked, so the runtime
		// discards it when this goroutine ends.
		runtime.LockOSThread()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	path := filepath.Join("/run/netns", name)
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	n, err := inpod.OpenNetns(path)
	if err != nil {
		t.Fatalf("open netns: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	ns := &NS{Netns: n, Name: name, Path: path}
	h := ns.Handle(t)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("set lo up in %s: %v", name, err)
	}
	return ns
}

// CgroupV2Root returns the mount point of the cgroup v2 hierarchy
// (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
func CgroupV2Root() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup2 mount found")
}

// NewCgroup creates an empty cgroup v2 directory ambit-test-<random> under the
// cgroup v2 root and removes it at cleanup (after processes in it have exited).
func NewCgroup(t testing.TB) string {
	t.Helper()
	root, err := CgroupV2Root()
	if err != nil {
		t.Fatalf("find cgroup v2: %v", err)
	}
	dir := filepath.Join(root, RandomName("ambit-test-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	return dir
}

// NoNetfilter returns an error if ns holds any iptables tables or nftables ruleset,
// for checks that redirection needs neither (F-PLUS-1). nft is consulted only when
// the binary is installed.
func NoNetfilter(ns *inpod.Netns) error {
	return ns.Do(func() error {
		for _, f := range []string{"ip_tables_names", "ip6_tables_names"} {
			data, err := os.ReadFile(filepath.Join("/proc/thread-self/net", f))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("read %s: %w", f, err)
			}
			if s := strings.TrimSpace(string(data)); s != "" {
				return fmt.Errorf("iptables tables present: %s", s)
			}
		}
		nft, err := exec.LookPath("nft")
		if err != nil {
			return nil
		}
		// The child inherits this thread's namespace through the fork.
		out, err := exec.Command(nft, "list", "ruleset").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list ruleset: %w: %s", err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			return fmt.Errorf("nftables ruleset present: %s", s)
		}
		return nil
	})
}

// NewPinDir returns an empty directory on a bpffs for pins: /sys/fs/bpf/ambit-test-<random>
// when /sys/fs/bpf is a bpffs, else a fresh bpffs instance mounted on a temporary
// directory. Everything is removed (and unmounted) at cleanup.
func NewPinDir(t testing.TB) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		dir := filepath.Join("/sys/fs/bpf", RandomName("ambit-test-"))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatalf("create pin dir: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir) // unpins: links and maps held only by pins are released
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}
