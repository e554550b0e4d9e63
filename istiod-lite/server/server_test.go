package server

import (
	"context"
	"errors"
	"github.com/ambitmesh/ambit/istiod-lite/model"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// eventually polls cond every 50ms until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startServer runs Run in the background until the test ends and waits for /ready.
func startServer(t *testing.T, cfg Config) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, 2*time.Minute, "/ready", func() (bool, error) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended early: %v", err)
		default:
		}
		resp, err := http.Get("http://" + cfg.MonitoringAddr + "/ready")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, errors.New(resp.Status)
	})
}

func TestRunNeedsOneSource(t *testing.T) {
	for _, cfg := range []Config{{}, {ConfigDir: "x", Kubeconfig: "y"}} {
		if err := Run(t.Context(), cfg); !errors.Is(err, ErrConfigSource) {
			t.Errorf("Run(%+v) = %v, want ErrConfigSource", cfg, err)
		}
	}
}

const filePod = `apiVersion: v1
kind: Pod
metadata: {name: app-1, namespace: demo}
spec:
  nodeName: node-a
  serviceAccountName: app
  containers: [{name: app, image: app}]
status: {podIP: 10.20.1.5}
`

// TestFileMode: the file source still drives the CA's node check.
func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	configDir, tokens := filepath.Join(dir, "config"), filepath.Join(dir, "tokens")
	if err := os.Mkdir(configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, "pod.yaml"), []byte(filePod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("zt-a istio-system/ztunnel node=node-a\nzt-b istio-system/ztunnel node=node-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ConfigDir: configDir, CADir: filepath.Join(dir, "ca"), TokensFile: tokens,
		GRPCAddr: freeAddr(t), GRPCPlaintextAddr: freeAddr(t), MonitoringAddr: freeAddr(t),
		TLSDNSNames: []string{"istiod.istio-system.svc"},
	}
	startServer(t, cfg)
	app := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "app"}
	for _, tc := range []struct {
		token string
		want  codes.Code
	}{{"zt-a", codes.OK}, {"zt-b", codes.PermissionDenied}} {
		c, err := caclient.New(caclient.Config{Address: cfg.GRPCPlaintextAddr, Token: func() (string, error) { return tc.token, nil }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Fetch(t.Context(), app, true)
		c.Close()
		if status.Code(err) != tc.want {
			t.Errorf("%s impersonating %s: %v, want %v", tc.token, app, err, tc.want)
		}
	}
}

// snapshotWith is a snapshot for problem tests.
func snapshotWith(t *testing.T, yaml string) *kubefile.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := kubefile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProblemsOf(t *testing.T) {
	snap := snapshotWith(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p1, namespace: shop, uid: uid-p1}
spec: {action: ALLOW, rules: [{from: [{source: {ipBlocks: ["not-an-ip"]}}]}]}
`)
	m := model.Build(snap, model.Options{})
	got := problemsOf(m, snap)
	if len(got) == 0 {
		t.Fatal("invalid policy reported no problem")
	}
	if p := got[0]; p.UID != "uid-p1" || p.APIVersion != "security.istio.io/v1" || p.Reason != "InvalidPolicy" || p.Name != "p1" || p.Message == "" {
		t.Errorf("policy problem = %+v", p)
	}
}
