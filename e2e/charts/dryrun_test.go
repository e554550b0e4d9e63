package charts

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/e2e/kube"
)

// TestServerDryRun installs the base chart's CRDs into a real kube-apiserver (the e2e
// harness's, from AMBIT_KUBE_BIN), then has the server validate, without persisting,
// every object the charts render, with default and with harness-like values, and mesh
// objects of every CRD kind: `kubectl apply --dry-run=server` runs admission and schema
// validation for each.
func TestServerDryRun(t *testing.T) {
	helm := helmBinary(t)
	bin := os.Getenv("AMBIT_KUBE_BIN")
	if bin == "" {
		t.Skip("AMBIT_KUBE_BIN is unset: run `make kube-tools` and set it to the directory it builds")
	}
	baseDir := filepath.Join(chartsDir, "base")
	crds, err := CRDs(baseDir)
	if errors.Is(err, ErrNoCRDs) {
		t.Fatalf("%v: run hack/gen-crds.sh first", err)
	} else if err != nil {
		t.Fatal(err)
	}

	ctx := testContext(t, 5*time.Minute)
	c, err := kube.Start(ctx, kube.Options{BinDir: bin, Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	kubectl := func(t *testing.T, stdin []byte, args ...string) string {
		t.Helper()
		cmd := c.Kubectl(ctx, bin, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// Large CRDs exceed the client-side apply annotation limit, hence server-side apply.
	kubectl(t, nil, "apply", "--server-side", "-f", filepath.Join(baseDir, "crds"))
	names := []string{"wait", "--for=condition=Established", "--timeout=60s"}
	for _, crd := range crds {
		names = append(names, "crd/"+crd.GetName())
	}
	kubectl(t, nil, names...)
	kubectl(t, nil, "create", "namespace", "istio-system")

	harness := harnessValues()
	for _, chart := range []string{"base", "istiod-lite", "ztunnel", "cni"} {
		for _, variant := range []struct {
			name   string
			values map[string]any
		}{{"default", nil}, {"harness", harness[chart]}} {
			t.Run(chart+"/"+variant.name, func(t *testing.T) {
				objs := render(t, helm, chart, variant.values)
				out := kubectl(t, manifest(t, objs), "apply", "--dry-run=server", "-n", "istio-system", "-f", "-")
				if got := strings.Count(out, "(server dry run)"); got != len(objs) {
					t.Errorf("server accepted %d objects, rendered %d:\n%s", got, len(objs), out)
				}
			})
		}
	}

	t.Run("mesh objects", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("testdata", "mesh-objects.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		out := kubectl(t, raw, "apply", "--dry-run=server", "-f", "-")
		if got := strings.Count(out, "(server dry run)"); got != len(objs) {
			t.Errorf("server accepted %d objects, sent %d:\n%s", got, len(objs), out)
		}
	})

	t.Run("schema rejects bad policy", func(t *testing.T) {
		bad := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bad, namespace: default}\nspec: {action: PERMIT}\n"
		cmd := c.Kubectl(ctx, bin, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(bad)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("server accepted an AuthorizationPolicy with action PERMIT:\n%s", out)
		}
	})
}

// manifest encodes objs as a YAML document stream.
func manifest(t *testing.T, objs []unstructured.Unstructured) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}
