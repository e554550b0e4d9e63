package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and cgroups")
	}
}

// buildEcho compiles ambit-echo into a temporary directory.
func buildEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ambit-echo")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ambitmesh/ambit/e2e/cmd/ambit-echo").CombinedOutput()
	if err != nil {
		t.Fatalf("build ambit-echo: %v\n%s", err, out)
	}
	return bin
}

// newTestCluster creates a cluster closed (and checked clean) on test cleanup.
func newTestCluster(t *testing.T, name string) *Cluster {
	t.Helper()
	c, err := New(name)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// eventually polls cond every 20ms until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

type tcpResult struct {
	Pod, Peer, Error string
	OK               bool
	Bytes            int
}

func runTCP(t *testing.T, echoBin string, from, to *Pod, payload string) tcpResult {
	t.Helper()
	out, err := from.Run(context.Background(), echoBin, "tcp", "--addr", to.IP.String()+":9000", "--payload", payload)
	if err != nil {
		t.Fatalf("tcp %s -> %s: %v\n%s", from.Name, to.Name, err, out)
	}
	var r tcpResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("tcp output %q: %v", out, err)
	}
	return r
}

func TestPrivilegedCluster(t *testing.T) {
	requireRoot(t)
	echoBin := buildEcho(t)
	c := newTestCluster(t, "ctest")
	a, err := c.AddNode("node-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AddNode("node-b")
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.String() != "10.10.0.11" || b.IP.String() != "10.10.0.12" || b.PodCIDR.String() != "10.20.2.0/24" || a.Gateway.String() != "10.20.1.1" {
		t.Fatalf("node addresses: %+v %+v", a, b)
	}
	a1, a2, b1 := mustPod(t, a, "a1"), mustPod(t, a, "a2"), mustPod(t, b, "b1")
	if a1.IP.String() != "10.20.1.2" || a2.IP.String() != "10.20.1.3" || b1.IP.String() != "10.20.2.2" {
		t.Fatalf("pod addresses: %v %v %v", a1.IP, a2.IP, b1.IP)
	}
	if _, err := a.AddPod("demo", "a1"); err == nil {
		t.Fatal("duplicate pod accepted")
	}

	logs := t.TempDir()
	servers := map[*Pod]*Process{}
	for _, p := range []*Pod{a1, a2, b1} {
		proc, err := p.Start(context.Background(), filepath.Join(logs, p.Name+".log"), echoBin, "server", "--name", p.Name, "--http", ":8080", "--tcp", ":9000")
		if err != nil {
			t.Fatal(err)
		}
		servers[p] = proc
	}
	for p := range servers {
		// From the fabric: exercises the fabric's routes to every pod CIDR.
		eventually(t, 10*time.Second, func() error {
			_, err := HTTPGet(c.FabricNetns, "http://"+p.IP.String()+":8080/ready")
			return err
		})
	}

	t.Run("pod processes are in their cgroup and netns", func(t *testing.T) {
		cg, err := Cgroup2Mount()
		if err != nil {
			t.Fatal(err)
		}
		for p, proc := range servers {
			want := "0::/" + strings.TrimPrefix(p.CgroupDir, cg+"/")
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", proc.Pid))
			if err != nil || !strings.Contains(string(data), want+"\n") {
				t.Errorf("%s: /proc/%d/cgroup = %q, want line %q (%v)", p.Name, proc.Pid, data, want, err)
			}
			assertInNetns(t, proc.Pid, p.NetnsPath)
		}
	})

	t.Run("node process runs in the node netns", func(t *testing.T) {
		proc, err := a.Start(context.Background(), "", "sleep", "60")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() error { return inNetns(proc.Pid, a.NetnsPath) })
		if err := proc.Stop(); err != nil {
			t.Fatal(err)
		}
		<-proc.Done()
	})

	t.Run("tcp across nodes and on one node", func(t *testing.T) {
		for _, tc := range []struct{ from, to *Pod }{{a1, b1}, {a1, a2}, {b1, a2}} {
			r := runTCP(t, echoBin, tc.from, tc.to, "MARKER-"+tc.from.Name)
			if !r.OK || r.Pod != tc.to.Name || !strings.HasPrefix(r.Peer, tc.from.IP.String()+":") {
				t.Errorf("%s -> %s: %+v", tc.from.Name, tc.to.Name, r)
			}
		}
	})

	t.Run("http from a pod", func(t *testing.T) {
		out, err := b1.Run(context.Background(), echoBin, "http", "--url", "http://"+a2.IP.String()+":8080/x", "--count", "2")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		n := 0
		for sc.Scan() {
			n++
			var r struct {
				Pod, Peer string
				Status    int
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Pod != "a2" || r.Status != 200 || !strings.HasPrefix(r.Peer, b1.IP.String()+":") {
				t.Errorf("line %q: %+v %v", sc.Text(), r, err)
			}
		}
		if n != 2 {
			t.Errorf("%d lines, want 2", n)
		}
	})

	t.Run("dial from the test process into a pod", func(t *testing.T) {
		conn, err := a2.Dial(context.Background(), "tcp", b1.IP.String()+":9000")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "pod=b1 peer="+conn.LocalAddr().String()+"\n" {
			t.Fatalf("greeting %q, %v", line, err)
		}
	})

	t.Run("cni", func(t *testing.T) { testRunCNI(t, c, a1) })

	t.Run("close removes everything", func(t *testing.T) {
		pids := []int{}
		for _, proc := range servers {
			pids = append(pids, proc.Pid)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, c)
		for _, proc := range servers {
			select {
			case <-proc.Done():
			default:
				t.Errorf("%v still running after Close", proc)
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := c.AddNode("node-c"); !errors.Is(err, ErrClosed) {
			t.Errorf("AddNode after Close: %v", err)
		}
	})
}

func mustPod(t *testing.T, n *Node, name string) *Pod {
	t.Helper()
	p, err := n.AddPod("demo", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func inNetns(pid int, netnsPath string) error {
	want, err := statNetns(netnsPath)
	if err != nil {
		return err
	}
	got, err := statNetns(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("pid %d in netns %v, want %v (%s)", pid, got, want, netnsPath)
	}
	return nil
}

func assertInNetns(t *testing.T, pid int, netnsPath string) {
	t.Helper()
	if err := inNetns(pid, netnsPath); err != nil {
		t.Error(err)
	}
}

// assertGone checks that no namespace, cgroup or ledger of the run is left.
func assertGone(t *testing.T, c *Cluster) {
	t.Helper()
	entries, _ := os.ReadDir(NetnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), c.RunID) {
			t.Errorf("netns %s left behind", e.Name())
		}
	}
	if _, err := os.Stat(c.CgroupRoot); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup %s left behind (%v)", c.CgroupRoot, err)
	}
	if _, err := os.Stat(ledgerPath(LedgerDir, c.RunID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ledger left behind (%v)", err)
	}
}

func testRunCNI(t *testing.T, c *Cluster, pod *Pod) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "fake-cni")
	script := "#!/bin/sh\nenv > " + dir + "/env\ncat > " + dir + "/stdin\nstat -L -c %i /proc/self/ns/net > " + dir + "/ns\n" +
		"if [ \"$CNI_COMMAND\" = DEL ]; then echo '{\"code\":11,\"msg\":\"boom\"}'; exit 1; fi\necho '{\"cniVersion\":\"1.0.0\"}'\n"
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := []byte(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"fake-cni","agentSocket":"/x.sock"}`)
	out, err := c.RunCNI(context.Background(), plugin, pod, conf, CNIAdd)
	if err != nil || strings.TrimSpace(string(out)) != `{"cniVersion":"1.0.0"}` {
		t.Fatalf("RunCNI ADD = %q, %v", out, err)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	for _, want := range []string{"CNI_COMMAND=ADD", "CNI_NETNS=" + pod.NetnsPath, "CNI_IFNAME=eth0", "K8S_POD_UID=" + pod.UID, "CNI_CONTAINERID=" + pod.ContainerID} {
		if !strings.Contains(string(env), want) {
			t.Errorf("plugin env lacks %q", want)
		}
	}
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if !strings.Contains(string(stdin), `"address":"`+pod.IP.String()+`/24"`) || !strings.Contains(string(stdin), `"agentSocket":"/x.sock"`) {
		t.Errorf("plugin stdin %s", stdin)
	}
	ns, _ := os.ReadFile(filepath.Join(dir, "ns"))
	id, _ := statNetns(pod.Node.NetnsPath)
	if strings.TrimSpace(string(ns)) != fmt.Sprint(id.ino) {
		t.Errorf("plugin ran in netns inode %s, want node's %d", ns, id.ino)
	}
	out, err = c.RunCNI(context.Background(), plugin, pod, conf, CNIDel)
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(string(out), `"code":11`) {
		t.Errorf("failing RunCNI DEL = %q, %v", out, err)
	}
}

func TestPrivilegedCleanupStale(t *testing.T) {
	requireRoot(t)
	c := newTestCluster(t, "stale")
	n, err := c.AddNode("node-a")
	if err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, n, "p")
	proc, err := p.Start(context.Background(), "", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	bpfDir := filepath.Join(t.TempDir(), "pins", "x") // stands in for a bpffs pin directory
	if err := os.MkdirAll(bpfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterCleanupPath(bpfDir); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterCleanupPath("/"); err == nil {
		t.Fatal("RegisterCleanupPath(/) accepted")
	}

	// Alive owner: left alone.
	if cleaned, err := CleanupStale(c.RunID); err != nil || len(cleaned) != 0 {
		t.Fatalf("CleanupStale of a live run = %v, %v", cleaned, err)
	}
	// Pretend the owner died (its pid was reused).
	c.mu.Lock()
	l := c.led
	c.mu.Unlock()
	l.OwnerStart = 1
	if err := l.save(LedgerDir); err != nil {
		t.Fatal(err)
	}
	cleaned, err := CleanupStale(c.RunID)
	if err != nil || len(cleaned) != 1 || cleaned[0] != c.RunID {
		t.Fatalf("CleanupStale = %v, %v", cleaned, err)
	}
	select {
	case <-proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("pod process survived CleanupStale")
	}
	if _, err := os.Stat(bpfDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registered path survived: %v", err)
	}
	assertGone(t, c)
}

func TestPrivilegedEnsureBPFFS(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "bpf")
	if err := EnsureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Fatalf("statfs %s: type %x, %v", dir, st.Type, err)
	}
	if err := EnsureBPFFS(dir); err != nil { // already mounted: no second mount
		t.Fatal(err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(dir, &st); err != nil || st.Type == unix.BPF_FS_MAGIC {
		t.Fatalf("bpffs mounted twice (type %x, %v)", st.Type, err)
	}
}

// TestPrivilegedConcurrentClose is the Ctrl-C case: Close from a signal
// handler racing another Close and a Start.
func TestPrivilegedConcurrentClose(t *testing.T) {
	requireRoot(t)
	c := newTestCluster(t, "cclose")
	n, err := c.AddNode("node-a")
	if err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, n, "p")
	if _, err := p.Start(context.Background(), "", "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for range 2 {
		go func() { errs <- c.Close() }()
	}
	go func() {
		_, err := p.Start(context.Background(), "", "sleep", "600")
		if err != nil && !errors.Is(err, ErrClosed) {
			errs <- err
			return
		}
		errs <- nil
	}()
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// A Start that won the race is stopped by the last Close.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c)
}
