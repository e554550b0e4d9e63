package install

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const sock = "/var/run/ambit/cni.sock"

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

// node is one test node: conf and bin dirs, a plugin binary and a running installer.
type node struct {
	t                       *testing.T
	confDir, binDir, plugin string
	logs                    *logBuf
	stop                    func() error
}

func newNode(t *testing.T) *node {
	dir := t.TempDir()
	n := &node{t: t, confDir: filepath.Join(dir, "net.d"), binDir: filepath.Join(dir, "bin"), plugin: filepath.Join(dir, "ambit-cni-build"), logs: &logBuf{}}
	if err := os.WriteFile(n.plugin, []byte("#!/bin/sh\necho plugin\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) installer() *Installer {
	return &Installer{ConfDir: n.confDir, BinDir: n.binDir, PluginPath: n.plugin, AgentSocket: sock,
		Logger: slog.New(slog.NewTextHandler(n.logs, nil)), RetryInterval: 20 * time.Millisecond}
}

// start runs an installer until stop is called or the test ends.
func (n *node) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.installer().Run(ctx) }()
	var once sync.Once
	var err error
	n.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	n.t.Cleanup(func() { _ = n.stop() })
}

func (n *node) write(name, content string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.confDir, name), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) read(name string) []byte {
	b, _ := os.ReadFile(filepath.Join(n.confDir, name))
	return b
}

// pluginTypes lists the plugin types of a conflist ("" when it does not parse).
func (n *node) pluginTypes(name string) []string {
	_, ps, err := parseConflist(n.read(name))
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range ps {
		ty, _ := pluginType(p)
		out = append(out, ty)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (n *node) binaryInstalled() bool {
	got, err := os.ReadFile(filepath.Join(n.binDir, PluginType))
	want, _ := os.ReadFile(n.plugin)
	st, serr := os.Stat(filepath.Join(n.binDir, PluginType))
	return err == nil && serr == nil && bytes.Equal(got, want) && st.Mode().Perm() == 0o755
}

var installed = []string{"calico", "portmap", PluginType}

func TestInstallerWaitsForAConfig(t *testing.T) {
	n := newNode(t)
	n.start()
	eventually(t, "waiting message", func() bool { return n.logs.has("waiting for a CNI network config") })
	n.write("10-calico.conflist", calico)
	eventually(t, "entry appended", func() bool { return slices.Equal(n.pluginTypes("10-calico.conflist"), installed) })
	if !n.binaryInstalled() {
		t.Fatal("plugin binary not installed")
	}
}

func TestInstallerExistingConflistAndUninstall(t *testing.T) {
	n := newNode(t)
	n.write("10-calico.conflist", calico)
	n.write("99-other.conflist", `{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}`)
	n.start()
	eventually(t, "entry appended", func() bool { return slices.Equal(n.pluginTypes("10-calico.conflist"), installed) })
	if got := n.pluginTypes("99-other.conflist"); !slices.Equal(got, []string{"bridge"}) {
		t.Errorf("non-primary config changed: %v", got)
	}
	var entryCfg map[string]any
	_, ps, _ := parseConflist(n.read("10-calico.conflist"))
	if err := jsonUnmarshal(ps[2], &entryCfg); err != nil || entryCfg["agentSocket"] != sock {
		t.Fatalf("entry = %v, %v", entryCfg, err)
	}
	if !n.binaryInstalled() {
		t.Fatal("plugin binary not installed")
	}
	if err := n.stop(); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if got, want := plugins(t, n.read("10-calico.conflist")), plugins(t, []byte(calico)); !slices.Equal(got, want) {
		t.Fatalf("uninstall left plugins %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(n.binDir, PluginType)); !os.IsNotExist(err) {
		t.Fatalf("binary still there: %v", err)
	}
}

func TestInstallerConvertsConf(t *testing.T) {
	n := newNode(t)
	n.write("10-bridge.conf", `{"cniVersion":"1.0.0","name":"bridge-net","type":"bridge","bridge":"cni0"}`)
	n.start()
	eventually(t, "conflist written", func() bool {
		return slices.Equal(n.pluginTypes("10-bridge.conflist"), []string{"bridge", PluginType})
	})
	eventually(t, ".conf removed", func() bool { return n.read("10-bridge.conf") == nil })
}

func TestInstallerIsIdempotent(t *testing.T) {
	n := newNode(t)
	n.write("10-calico.conflist", calico)
	in := n.installer()
	if err := in.sync(); err != nil {
		t.Fatal(err)
	}
	first := n.read("10-calico.conflist")
	ino := inode(t, filepath.Join(n.confDir, "10-calico.conflist"))
	for i := range 3 {
		if err := in.sync(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(n.read("10-calico.conflist"), first) || inode(t, filepath.Join(n.confDir, "10-calico.conflist")) != ino {
			t.Fatalf("sync %d rewrote an installed config", i)
		}
	}
	n.start() // a restarted agent finds its entry in place
	eventually(t, "started", func() bool { return n.binaryInstalled() })
	if err := in.sync(); err != nil || !slices.Equal(n.pluginTypes("10-calico.conflist"), installed) {
		t.Fatalf("after restart: %v, %v", n.pluginTypes("10-calico.conflist"), err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestInstallerReinsertsAfterRewrite(t *testing.T) {
	n := newNode(t)
	n.write("10-calico.conflist", calico)
	n.start()
	eventually(t, "entry appended", func() bool { return slices.Equal(n.pluginTypes("10-calico.conflist"), installed) })
	n.write("10-calico.conflist", calico) // the primary CNI's daemon rewrites its file
	eventually(t, "entry re-appended", func() bool { return slices.Equal(n.pluginTypes("10-calico.conflist"), installed) })
	if n.pluginTypes("10-calico.conflist") == nil {
		t.Fatal("config unreadable")
	}
}

func TestInstallerFollowsThePrimary(t *testing.T) {
	n := newNode(t)
	n.write("20-b.conflist", `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"b"}]}`)
	n.start()
	eventually(t, "entry in 20-b", func() bool { return slices.Equal(n.pluginTypes("20-b.conflist"), []string{"b", PluginType}) })
	n.write("10-a.conflist", `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"a"}]}`)
	eventually(t, "entry moved to 10-a", func() bool {
		return slices.Equal(n.pluginTypes("10-a.conflist"), []string{"a", PluginType}) &&
			slices.Equal(n.pluginTypes("20-b.conflist"), []string{"b"})
	})
}

func TestInstallerMalformedConfig(t *testing.T) {
	for _, tc := range []struct {
		name, valid string // valid: a second, valid file, or ""
	}{
		{"only file malformed, then fixed", ""},
		{"malformed first file skipped", "20-b.conflist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			n.write("10-calico.conflist", `{"name":"k8s-pod-network","plugins":[{"type":"calico",`)
			if tc.valid != "" {
				n.write(tc.valid, `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"b"}]}`)
			}
			n.start()
			eventually(t, "error naming the file", func() bool {
				return n.logs.has("10-calico.conflist") && n.logs.has("invalid CNI network config")
			})
			if tc.valid != "" {
				eventually(t, "valid file used", func() bool { return slices.Equal(n.pluginTypes(tc.valid), []string{"b", PluginType}) })
				return
			}
			if got := string(n.read("10-calico.conflist")); !strings.HasSuffix(got, `"calico",`) {
				t.Fatalf("malformed file was rewritten: %q", got)
			}
			n.write("10-calico.conflist", calico)
			eventually(t, "installed once fixed", func() bool { return slices.Equal(n.pluginTypes("10-calico.conflist"), installed) })
		})
	}
}

func TestInstallerRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Installer
	}{
		{"no conf dir", Installer{AgentSocket: sock}},
		{"relative socket", Installer{ConfDir: "/x", AgentSocket: "cni.sock"}},
		{"plugin without bin dir", Installer{ConfDir: "/x", AgentSocket: sock, PluginPath: "/p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.in.Run(context.Background()); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
