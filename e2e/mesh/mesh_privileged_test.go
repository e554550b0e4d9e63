package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/echo"
)

// binaries returns the directory of the built binaries: $AMBIT_BIN (make passes bin/),
// or a fresh build into a temp dir.
func binaries(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("AMBIT_BIN"); dir != "" {
		return dir
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"./istiod-lite/cmd/istiod-lite", "./ztunnel/cmd/ztunnel", "./cni/cmd/ambit-cni-agent",
		"./cni/cmd/ambit-cni", "./e2e/cmd/ambit-echo")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build binaries: %v\n%s", err, out)
	}
	return dir
}

// startTestMesh skips unless root, then starts a two-node mesh that the test's cleanup
// removes; the context bounds the whole test.
func startTestMesh(t *testing.T, name string) (context.Context, *Mesh) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and cgroups and loads eBPF")
	}
	bin, err := filepath.Abs(binaries(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	m, err := Start(ctx, Options{Name: name, Bin: bin, Nodes: []string{"node-a", "node-b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close mesh: %v", err)
		}
		m.RemoveWorkDir()
	})
	return ctx, m
}

// tcpEcho runs the sample TCP client in from and returns its single result.
func tcpEcho(ctx context.Context, m *Mesh, from *cluster.Pod, to netip.AddrPort) (echo.TCPResult, error) {
	out, err := from.Run(ctx, m.Bin("ambit-echo"), "tcp", "--addr", to.String(), "--payload", "restart-check")
	var r echo.TCPResult
	if jerr := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &r); jerr != nil {
		return r, fmt.Errorf("tcp echo: %w (output %q, run error %v)", jerr, out, err)
	}
	if !r.OK {
		return r, fmt.Errorf("tcp echo failed: %s", r.Error)
	}
	return r, nil
}

// TestPrivilegedZtunnelRestartKeepsEnrolment restarts both ztunnels (F-ENROL-4): the node
// agents replay their pods over ZDS, the new ztunnels re-register their listeners in the
// pinned redirection maps, and mesh traffic works again with the client's source IP.
func TestPrivilegedZtunnelRestartKeepsEnrolment(t *testing.T) {
	ctx, m := startTestMesh(t, "ambit-mesh-test")
	for _, err := range []error{
		m.Config.Namespace("demo", true), m.Config.ServiceAccount("demo", "client"), m.Config.ServiceAccount("demo", "server"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	client, err := m.AddPod(ctx, PodSpec{Node: "node-a", Namespace: "demo", Name: "client", ServiceAccount: "client"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := m.AddPod(ctx, PodSpec{Node: "node-b", Namespace: "demo", Name: "server", ServiceAccount: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Start(ctx, m.LogPath("app-server"), m.Bin("ambit-echo"), "server", "--name", "server"); err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(server.IP, 9000)
	check := func(when string) {
		t.Helper()
		for _, p := range []*cluster.Pod{client, server} {
			if err := m.WaitEnrolled(ctx, p); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
		if err := m.WaitWorkloads(ctx, 2); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var r echo.TCPResult
		err := Poll(ctx, 30*time.Second, func() (err error) { r, err = tcpEcho(ctx, m, client, target); return err })
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if ap, _ := netip.ParseAddrPort(r.Peer); ap.Addr() != client.IP {
			t.Fatalf("%s: server saw %s, want the client pod IP %s", when, r.Peer, client.IP)
		}
		metrics, err := m.Metrics("node-b")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, `connection_security_policy="mutual_tls"`) {
			t.Fatalf("%s: node-b ztunnel recorded no mTLS connection", when)
		}
	}
	check("before restart")
	for _, node := range []string{"node-a", "node-b"} {
		if err := m.RestartZtunnel(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	check("after restarting both ztunnels")
}
