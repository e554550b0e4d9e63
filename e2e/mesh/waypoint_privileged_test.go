package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// waypointBinaries returns a binaries dir that also holds the waypoint: $AMBIT_BIN when
// it has one, else a fresh build of the others beside a link to the repository's
// bin/waypoint (make build). It skips when no waypoint binary exists.
func waypointBinaries(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and cgroups and loads eBPF")
	}
	if dir := os.Getenv("AMBIT_BIN"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "waypoint")); err != nil {
			t.Skipf("no waypoint in $AMBIT_BIN (make build): %v", err)
		}
		return dir
	}
	built, err := filepath.Abs("../../bin/waypoint")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(built); err != nil {
		t.Skipf("bin/waypoint missing (make build): %v", err)
	}
	dir := binaries(t)
	if err := os.Symlink(built, filepath.Join(dir, "waypoint")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPrivilegedWaypoint brings up a two-node mesh with a waypoint on node-b for an
// echo server's Service (istio.io/use-waypoint): a client on node-a reaches the
// server through the Service's VIP and the reply shows the x-request-id the waypoint
// added (the client sends none) and the waypoint counts the requests. An undeclared
// waypoint is refused.
func TestPrivilegedWaypoint(t *testing.T) {
	bin, err := filepath.Abs(waypointBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	m, err := Start(ctx, Options{Name: "ambit-wp-test", Bin: bin, Nodes: []string{"node-a", "node-b"},
		Waypoints: []WaypointSpec{{Namespace: "demo", Name: "waypoint"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close mesh: %v", err)
		}
		if !t.Failed() {
			m.RemoveWorkDir()
		} else {
			t.Logf("logs kept in %s", m.Dir)
		}
	})
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
	server, err := m.AddPod(ctx, PodSpec{Node: "node-b", Namespace: "demo", Name: "server", ServiceAccount: "server",
		Labels: map[string]string{"app": "server"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Start(ctx, m.LogPath("app-server"), m.Bin("ambit-echo"), "server", "--name", "server"); err != nil {
		t.Fatal(err)
	}
	vip, err := m.Config.AllocateServiceIP()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Config.LabelledService("demo", "server", vip.String(), map[string]string{wire.LabelUseWaypoint: "waypoint"},
		map[string]string{"app": "server"}, ServicePort{Name: "http", Port: 80, TargetPort: 8080}); err != nil {
		t.Fatal(err)
	}

	if _, err := m.AddWaypoint(ctx, "node-b", "demo", "other"); !errors.Is(err, ErrUndeclaredWaypoint) {
		t.Fatalf("undeclared waypoint: error %v, want ErrUndeclaredWaypoint", err)
	}
	w, err := m.AddWaypoint(ctx, "node-b", "demo", "waypoint")
	if err != nil {
		t.Fatal(err)
	}
	if w.VIP == vip || !ServiceRange.Contains(w.VIP) {
		t.Fatalf("waypoint VIP %s: want a free address of %s other than the server's %s", w.VIP, ServiceRange, vip)
	}
	if err := m.WaitEnrolled(ctx, client); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitEnrolled(ctx, server); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitServing(ctx, w, "server", 80); err != nil {
		t.Fatal(err)
	}
	before, err := w.Requests("demo")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:80/hello", vip)
	var r echo.HTTPResult
	err = Poll(ctx, 30*time.Second, func() error {
		out, runErr := client.Run(ctx, m.Bin("ambit-echo"), "http", "--url", url)
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &r); err != nil {
			return fmt.Errorf("http echo: %w (output %q, run error %v)", err, out, runErr)
		}
		if r.Status != 200 || r.Pod != "server" {
			return fmt.Errorf("http echo: status %d from %q: %s", r.Status, r.Pod, r.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Headers["x-request-id"] == "" {
		t.Fatalf("reply %+v shows no x-request-id: the request did not cross the waypoint", r)
	}
	err = Poll(ctx, 10*time.Second, func() error {
		after, err := w.Requests("demo")
		if err != nil {
			return err
		}
		if after <= before {
			return fmt.Errorf("waypoint counted %v requests for demo, before %v", after, before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAllocateServiceIP (unprivileged): addresses come from the top of ServiceRange
// down, skip cluster IPs already written, and are never handed out twice.
func TestAllocateServiceIP(t *testing.T) {
	c := &Config{Dir: t.TempDir()}
	if err := c.Service("demo", "taken", "10.96.255.253", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		ip, err := c.AllocateServiceIP()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if want := "10.96.255.254 10.96.255.252 10.96.255.251"; strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "svc-demo-taken.yaml")); err != nil {
		t.Fatalf("service not written: %v", err)
	}
}

// TestAddWaypointUndeclared (unprivileged): a waypoint missing from Options.Waypoints
// is refused before anything is made, since istiod-lite would not admit it.
func TestAddWaypointUndeclared(t *testing.T) {
	m := &Mesh{opts: Options{Waypoints: []WaypointSpec{{Namespace: "demo", Name: "waypoint"}}}}
	if _, err := m.AddWaypoint(context.Background(), "node-a", "demo", "other"); !errors.Is(err, ErrUndeclaredWaypoint) {
		t.Fatalf("error %v, want ErrUndeclaredWaypoint", err)
	}
	if _, err := m.AddWaypoint(context.Background(), "node-x", "demo", "waypoint"); err == nil || !strings.Contains(err.Error(), "unknown node") {
		t.Fatalf("error %v, want unknown node", err)
	}
}
