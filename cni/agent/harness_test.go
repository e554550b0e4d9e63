package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"istio.io/istio/pkg/zdsapi"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
	"github.com/ambitmesh/ambit/pkg/zds"
)

// journal is an ordered log shared by the fakes, to check the order of operations
// across redirection and ztunnel.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// fakeRedirector stands in for cni/redirect.Manager: it remembers "pins" across agent
// restarts because the test reuses it.
type fakeRedirector struct {
	j       *journal
	mu      sync.Mutex
	pods    map[string]PodNet
	enrols  int
	failErr error
}

func newFakeRedirector(j *journal) *fakeRedirector {
	return &fakeRedirector{j: j, pods: map[string]PodNet{}}
}

func (f *fakeRedirector) Enrol(p PodNet) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return nil, f.failErr
	}
	f.pods[p.UID] = p
	f.enrols++
	f.j.add("redirect enrol %s", p.UID)
	return os.Open(os.DevNull)
}

func (f *fakeRedirector) Unenrol(uid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, uid)
	f.j.add("redirect unenrol %s", uid)
	return nil
}

func (f *fakeRedirector) Enrolled() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for uid := range f.pods {
		out = append(out, uid)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeRedirector) has(uid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.pods[uid]
	return ok
}

func (f *fakeRedirector) get(uid string) PodNet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pods[uid]
}

// fakeZtunnel is a zds.Handler keeping workload infos. With gate set, AddWorkload
// waits until the gate is closed (a silent ztunnel).
type fakeZtunnel struct {
	j      *journal
	mu     sync.Mutex
	wls    map[string]*zdsapi.WorkloadInfo
	reject string
	gate   chan struct{}
}

func newFakeZtunnel(j *journal) *fakeZtunnel {
	return &fakeZtunnel{j: j, wls: map[string]*zdsapi.WorkloadInfo{}}
}

func (z *fakeZtunnel) AddWorkload(uid string, info *zdsapi.WorkloadInfo, netns, sockmap *os.File) error {
	_ = netns.Close()
	if sockmap != nil {
		_ = sockmap.Close()
	}
	if z.gate != nil {
		<-z.gate
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.reject != "" {
		return fmt.Errorf("%s", z.reject)
	}
	if sockmap == nil {
		return fmt.Errorf("no sockmap")
	}
	z.wls[uid] = info
	z.j.add("ztunnel add %s", uid)
	return nil
}

func (z *fakeZtunnel) DelWorkload(uid string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.wls, uid)
	z.j.add("ztunnel del %s", uid)
	return nil
}

func (z *fakeZtunnel) Reconcile(keep map[string]bool) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	for uid := range z.wls {
		if !keep[uid] {
			delete(z.wls, uid)
			z.j.add("ztunnel drop %s", uid)
		}
	}
	z.j.add("ztunnel snapshot")
	return nil
}

func (z *fakeZtunnel) info(uid string) *zdsapi.WorkloadInfo {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.wls[uid]
}

// env is one node: directories, sockets and fakes shared by successive agent runs.
type env struct {
	t                                    *testing.T
	dir, configDir, stateDir, cgroupRoot string
	zdsSock, cniSock                     string
	j                                    *journal
	redir                                *fakeRedirector
}

func newEnv(t *testing.T) *env {
	dir, err := os.MkdirTemp("", "agt") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, configDir: filepath.Join(dir, "cfg"), stateDir: filepath.Join(dir, "state"),
		cgroupRoot: filepath.Join(dir, "cg"), zdsSock: filepath.Join(dir, "zds.sock"), cniSock: filepath.Join(dir, "cni.sock")}
	for _, d := range []string{e.configDir, e.cgroupRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.j = &journal{}
	e.redir = newFakeRedirector(e.j)
	return e
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// writeConfig replaces the config dir content with one YAML file.
func (e *env) writeConfig(yaml string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.configDir, "cluster.yaml"), []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// newPod creates the pod's cgroup dir and a stand-in netns file and returns the add
// request for it.
func (e *env) newPod(uid, ns, name, ip string) podapi.AddRequest {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Join(e.cgroupRoot, "kubepods", "pod"+uid), 0o755); err != nil {
		e.t.Fatal(err)
	}
	netns := filepath.Join(e.dir, "netns-"+uid)
	if err := os.WriteFile(netns, nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return podapi.AddRequest{UID: uid, Name: name, Namespace: ns, Netns: netns, IPs: []string{ip}, ContainerID: "sandbox-" + uid}
}

// startAgent runs an agent; the returned func stops it and waits. opts adjust the
// config first.
func (e *env) startAgent(opts ...func(*Config)) (*Agent, func()) {
	e.t.Helper()
	cfg := Config{
		NodeName: "node-a", ConfigDir: e.configDir, ZDSSocket: e.zdsSock, CNISocket: e.cniSock,
		CgroupRoot: e.cgroupRoot, StateDir: e.stateDir, Redirector: e.redir, Logger: logger(e.t),
		ProbeSources: []netip.Addr{netip.MustParseAddr("10.20.1.1")}, HandoffTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	stop := run(e.t, a.Run)
	// The socket file exists from bind(2) on, before listen(2): wait for a connection.
	eventually(e.t, func() bool {
		c, err := net.Dial("unix", e.cniSock)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, "cni socket")
	return a, stop
}

func (e *env) startZtunnel(z *fakeZtunnel) func() {
	c := &zds.Client{Path: e.zdsSock, Handler: z, Logger: logger(e.t), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	return run(e.t, c.Run)
}

func (e *env) client() *podapi.Client { return podapi.NewClient(e.cniSock, 10*time.Second) }

func run(t *testing.T, fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const nsPlain = `apiVersion: v1
kind: Namespace
metadata:
  name: apps
`

const nsAmbient = `apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels:
    istio.io/dataplane-mode: ambient
`

func podYAML(name, uid, sa string, labels string) string {
	s := fmt.Sprintf("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: apps\n  uid: %s\n", name, uid)
	if labels != "" {
		s += "  labels:\n    " + labels + "\n"
	}
	s += "spec:\n  containers:\n  - name: app\n    image: app\n"
	if sa != "" {
		s += "  serviceAccountName: " + sa + "\n"
	}
	return s
}
