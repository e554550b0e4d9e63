package zds

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"istio.io/istio/pkg/zdsapi"
)

// fakeZtunnel is a Handler keeping workloads in a map, like ztunnel's state.
type fakeZtunnel struct {
	mu        sync.Mutex
	workloads map[string]*received
	events    []string
	rejectAdd string // when non-empty, AddWorkload fails with this message
}

type received struct {
	info    *zdsapi.WorkloadInfo
	netns   *os.File
	sockmap *os.File
}

func newFakeZtunnel() *fakeZtunnel { return &fakeZtunnel{workloads: map[string]*received{}} }

func (f *fakeZtunnel) AddWorkload(uid string, info *zdsapi.WorkloadInfo, netns, sockmap *os.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "add "+uid)
	if f.rejectAdd != "" {
		_ = netns.Close()
		if sockmap != nil {
			_ = sockmap.Close()
		}
		return fmt.Errorf("%s", f.rejectAdd)
	}
	if old := f.workloads[uid]; old != nil {
		old.close()
	}
	f.workloads[uid] = &received{info: info, netns: netns, sockmap: sockmap}
	return nil
}

func (f *fakeZtunnel) DelWorkload(uid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "del "+uid)
	if w := f.workloads[uid]; w != nil {
		w.close()
		delete(f.workloads, uid)
	}
	return nil
}

func (f *fakeZtunnel) Reconcile(keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "reconcile")
	for uid, w := range f.workloads {
		if !keep[uid] {
			w.close()
			delete(f.workloads, uid)
		}
	}
	return nil
}

func (r *received) close() {
	_ = r.netns.Close()
	if r.sockmap != nil {
		_ = r.sockmap.Close()
	}
}

func (f *fakeZtunnel) uids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for uid := range f.workloads {
		out = append(out, uid)
	}
	sort.Strings(out)
	return out
}

func (f *fakeZtunnel) get(uid string) *received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.workloads[uid]
}

func (f *fakeZtunnel) eventCount(ev string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.events {
		if e == ev {
			n++
		}
	}
	return n
}

func (f *fakeZtunnel) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for uid, w := range f.workloads {
		w.close()
		delete(f.workloads, uid)
	}
}

// socketPath returns a short socket path (sun_path is limited to 108 bytes).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "zds")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "zds.sock")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// start runs fn in a goroutine stopped and awaited at cleanup; the returned cancel stops
// it early and waits for it.
func start(t *testing.T, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
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

func startServer(t *testing.T, path string) (*Server, func()) {
	t.Helper()
	s := NewServer(path, testLogger(t))
	stop := start(t, s.Run)
	t.Cleanup(func() { _ = s.Close() })
	eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, "server socket exists")
	return s, stop
}

func startClient(t *testing.T, path string, h Handler) func() {
	t.Helper()
	c := &Client{Path: path, Handler: h, Logger: testLogger(t), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	return start(t, c.Run)
}

// eventually polls cond until it holds or a deadline passes.
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

// pipeWorkload returns a workload whose netns is the read end of a pipe (the write end
// is returned so the test can prove the same pipe arrives) and whose sockmap is
// /dev/null when withSockMap.
func pipeWorkload(t *testing.T, uid string, withSockMap bool) (Workload, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	wl := Workload{UID: uid, Info: &zdsapi.WorkloadInfo{Name: "pod-" + uid, Namespace: "ns", ServiceAccount: "sa"}, Netns: r}
	if withSockMap {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		wl.SockMap = f
	}
	return wl, w
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
