package kube

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// TestPrivilegedKubeInNetns runs the control plane inside a fabric namespace on its
// bridge address, as the e2e harness does, and reaches it from the test process through
// the namespace-dialling client and kubectl.
func TestPrivilegedKubeInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	bin := os.Getenv(kubeBinEnv)
	if bin == "" {
		t.Skipf("%s is not set (use `make test-kube`)", kubeBinEnv)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fabric, err := cluster.New("kubens")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fabric.Close(); err != nil {
			t.Error(err)
		}
	})
	c, err := Start(ctx, Options{
		BinDir: bin, Dir: t.TempDir(), Netns: fabric.FabricNetns, Host: fabric.BridgeIP.String(),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	if want := "https://10.10.0.1:6443"; c.Server != want {
		t.Fatalf("server = %s, want %s", c.Server, want)
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "default namespace", func() (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	out, err := c.Kubectl(ctx, bin, "get", "namespace", "default", "-o", "name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "namespace/default" {
		t.Fatalf("kubectl in netns: %v: %s", err, out)
	}
}
