package charts

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") == "1", "rewrite golden files under testdata/")

// chartsDir is the repository's charts/ directory, seen from this package.
const chartsDir = "../../charts"

// helmBinary returns $AMBIT_HELM, skipping the test when it is unset.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("AMBIT_HELM")
	if bin == "" {
		t.Skip("AMBIT_HELM is unset: build Helm with hack/build-helm.sh and set AMBIT_HELM to the path it prints")
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("AMBIT_HELM=%s: %v", bin, err)
	}
	return bin
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func render(t *testing.T, helm, chart string, values map[string]any) []unstructured.Unstructured {
	t.Helper()
	objs, err := Render(testContext(t, time.Minute), helm, filepath.Join(chartsDir, chart), chart, "istio-system", values)
	if err != nil {
		t.Fatalf("Render(%s): %v", chart, err)
	}
	return objs
}

// wantArgs fails unless every flag in want appears in args (exactly, as one argument).
func wantArgs(t *testing.T, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args lack %q; args:\n  %s", w, strings.Join(args, "\n  "))
		}
	}
}

// noFlag fails when an argument starts with --name=.
func noFlag(t *testing.T, args []string, name string) {
	t.Helper()
	for _, a := range args {
		if strings.HasPrefix(a, "--"+name+"=") {
			t.Errorf("args hold %q, want no --%s", a, name)
		}
	}
}

// golden compares objs, as YAML documents, with testdata/<name>.golden.yaml, rewriting
// it under -update (or UPDATE_GOLDEN=1).
func golden(t *testing.T, name string, objs []unstructured.Unstructured) {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatalf("marshal %s: %v", o.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (refresh with go test -update): %v", err)
	}
	if string(want) != b.String() {
		t.Errorf("rendered %s differs from %s (refresh with go test -update after checking):\n%s", name, path, lineDiff(string(want), b.String()))
	}
}

// lineDiff lists the first lines that differ between want and got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out = append(out, fmt.Sprintf("line %d: want %q, got %q", i+1, wl, gl))
		}
	}
	return strings.Join(out, "\n")
}

// run runs a command and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// harnessValues are values of the kind the e2e harness sets (node-local paths, addresses
// on the fabric bridge, a kubeconfig), by chart.
func harnessValues() map[string]map[string]any {
	global := map[string]any{"trustDomain": "example.org", "clusterID": "c1"}
	return map[string]map[string]any{
		"base": {"rbac": map[string]any{"aggregate": true}},
		"istiod-lite": {
			"global": global, "kubeconfig": "/tmp/e2e/kubeconfig", "grpcAddr": "10.10.0.1:15012",
			"grpcPlaintextAddr": "10.10.0.1:15010", "monitoringAddr": "10.10.0.1:15014", "logLevel": "debug",
		},
		"ztunnel": {
			"global": global, "xdsAddress": "10.10.0.1:15012", "caAddress": "10.10.0.1:15012",
			"rootCertFile": "/tmp/e2e/ca/root-cert.pem", "tokenFile": "/tmp/e2e/node-a/token/istio-token",
			"zdsSocket": "/tmp/e2e/node-a/zds/ztunnel.sock", "adminAddr": "127.0.0.1:15000", "readinessAddr": ":25021",
		},
		"cni": {
			"kubeconfig": "/tmp/e2e/kubeconfig", "confDir": "/tmp/e2e/node-a/net.d", "binDir": "/tmp/e2e/node-a/bin",
			"pluginPath": "/tmp/e2e/bin/ambit-cni", "zdsSocket": "/tmp/e2e/node-a/zds/ztunnel.sock",
			"cniSocket": "/tmp/e2e/node-a/run/cni.sock", "bpfPinDir": "/sys/fs/bpf/ambit/node-a",
			"cgroupRoot": "/sys/fs/cgroup/e2e", "stateDir": "/tmp/e2e/node-a/state", "probeSources": "10.20.1.1",
			"installCNI": false,
		},
	}
}
