package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ambitmesh/ambit/e2e/mesh"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// meshBinEnv names the absolute directory of prebuilt mesh binaries (`make build` puts
// them in bin/); when it is empty the test builds them itself.
const meshBinEnv = "AMBIT_BIN"

// meshPackages are the main module's commands mesh.Start and the test run, by binary
// name (the Makefile's build target).
var meshPackages = []string{
	"./istiod-lite/cmd/istiod-lite",
	"./ztunnel/cmd/ztunnel",
	"./cni/cmd/ambit-cni-agent",
	"./cni/cmd/ambit-cni",
	"./e2e/cmd/ambit-echo",
}

// meshBinaries returns the directory holding the mesh binaries: $AMBIT_BIN, or a
// temporary directory they were just built into from this checkout (../..).
func meshBinaries(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(meshBinEnv); dir != "" {
		if !filepath.IsAbs(dir) {
			t.Fatalf("%s=%s must be an absolute path (go test runs in the package directory)", meshBinEnv, dir)
		}
		for _, pkg := range meshPackages {
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(pkg))); err != nil {
				t.Fatalf("%s=%s: %v (run make build)", meshBinEnv, dir, err)
			}
		}
		return dir
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("main module dir: %v", err)
	}
	dir := t.TempDir()
	// With several packages, -o names a directory and each binary is its package's name.
	goBuild(t, root, append([]string{"-o", dir + string(filepath.Separator)}, meshPackages...)...)
	return dir
}

// buildDialer builds cmd/istio-hbone-dial of this module and returns its path.
func buildDialer(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "istio-hbone-dial")
	goBuild(t, ".", "-o", out, "./cmd/istio-hbone-dial")
	return out
}

func goBuild(t *testing.T, dir string, args ...string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go build needs the go command in PATH: %v", err)
	}
	cmd := exec.CommandContext(context.Background(), goTool, append([]string{"build"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

// identityFiles holds the PEM files istio-hbone-dial is given.
type identityFiles struct{ cert, key, root string }

// writeIdentity issues a certificate for id from issuer and writes it (chain, leaf
// first), its PKCS#8 key and trustRoot (the roots the client checks the proxy against)
// as PEM files in a fresh temporary directory.
func writeIdentity(t *testing.T, issuer *ca.Authority, id spiffe.Identity, trustRoot []byte) identityFiles {
	t.Helper()
	cert := issue(t, issuer, id)
	var chain bytes.Buffer
	for _, der := range cert.Certificate {
		if err := pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
			t.Fatalf("encode chain: %v", err)
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	dir := t.TempDir()
	f := identityFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), root: filepath.Join(dir, "root.pem")}
	for path, data := range map[string][]byte{
		f.cert: chain.Bytes(),
		f.key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		f.root: trustRoot,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	return f
}

// closeMesh stops the mesh and removes everything it made; when the test failed it
// first logs the tail of every component log, since the work dir goes with it.
func closeMesh(t *testing.T, m *mesh.Mesh, logs []string) {
	t.Helper()
	if t.Failed() {
		for _, name := range logs {
			t.Logf("--- %s (tail) ---\n%s", name, tail(m.LogPath(name), 40))
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("close mesh: %v", err)
	}
	if err := m.RemoveWorkDir(); err != nil {
		t.Errorf("remove mesh work dir: %v", err)
	}
}

// tail returns the last n lines of the file at path (or why it cannot).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
