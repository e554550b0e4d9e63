package suite

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

// env is the shared cluster, nil when the suite cannot run here (skipReason says why).
var (
	env        *testbed.Testbed
	skipReason string
	logDir     string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	kubeBin, bin, helm := os.Getenv("AMBIT_KUBE_BIN"), os.Getenv("AMBIT_BIN"), os.Getenv("AMBIT_HELM")
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root"
	case kubeBin == "" || bin == "" || helm == "":
		skipReason = "AMBIT_KUBE_BIN, AMBIT_BIN and AMBIT_HELM must be set (make e2e)"
	}
	if skipReason != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ambit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tb, err := testbed.Start(ctx, testbed.Options{
		Name: "e2e", Nodes: []string{"node-a", "node-b"}, KubeBin: kubeBin, Bin: bin, Dir: dir, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			fmt.Fprintln(os.Stderr, "logs kept in", dir)
		} else {
			os.RemoveAll(dir)
		}
		if err := tb.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close cluster:", err)
		}
	}()
	_, file, _, _ := runtime.Caller(0)
	charts := filepath.Join(filepath.Dir(file), "..", "..", "charts")
	if err := tb.Install(ctx, testbed.InstallOptions{Helm: helm, Charts: charts}); err != nil {
		fmt.Fprintln(os.Stderr, "install ambit:", err)
		return 1
	}
	env = tb
	code = m.Run()
	return code
}

// setup skips the test when the suite cannot run and returns a context bounded by the
// test's deadline budget.
func setup(t *testing.T, budget time.Duration) context.Context {
	t.Helper()
	if env == nil {
		t.Skip(skipReason)
	}
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if t.Failed() {
			dumpGoroutines(t)
			t.Logf("component and pod logs: %s", logDir)
		}
	})
	return ctx
}

// dumpGoroutines saves every ztunnel's goroutine stacks (admin /debug/pprof) next to
// the pod logs, to diagnose a stall.
func dumpGoroutines(t *testing.T) {
	for _, n := range env.Nodes {
		body, err := cluster.HTTPGet(n.NetnsPath, "http://127.0.0.1:15000/debug/pprof/goroutine?debug=2")
		if err != nil {
			t.Logf("goroutines of %s ztunnel: %v", n.Name, err)
			continue
		}
		path := filepath.Join(logDir, fmt.Sprintf("goroutines-%s-%s.txt", n.Name, strings.ReplaceAll(t.Name(), "/", "_")))
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Log(err)
		}
	}
}
