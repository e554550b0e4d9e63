// Command ambit-demo runs Ambit's L4 mesh on this machine (root): two nodes made of
// network namespaces, istiod-lite, a node agent and a ztunnel per node, a small sample app
// in an ambient and a non-ambient namespace; it sends real HTTP and TCP traffic, prints a
// report of the flows, checks its own claims (exit status 1 when one fails) and removes
// everything it created, also on Ctrl-C. It is what `make demo` runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

func main() {
	bin := flag.String("bin", "bin", "directory with the built binaries (make build)")
	keep := flag.Bool("keep-logs", false, "keep the work dir with component logs even on success")
	timeout := flag.Duration("timeout", 4*time.Minute, "overall deadline")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-demo:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "ambit-demo: must run as root (it creates network namespaces and loads eBPF)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	os.Exit(run(ctx, abs, *keep))
}

func run(ctx context.Context, bin string, keep bool) (code int) {
	start := time.Now()
	if _, err := cluster.CleanupStale("ambit-demo"); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-demo: cleaning up an earlier run:", err)
	}
	fmt.Println("ambit-demo: starting a two-node mesh (istiod-lite, 2 node agents, 2 ztunnels)…")
	m, err := mesh.Start(ctx, mesh.Options{
		Name: "ambit-demo", Bin: bin, Nodes: []string{"node-a", "node-b"},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-demo: start mesh:", err)
		if m != nil {
			keepOrRemove(ctx, m, true)
		}
		return 1
	}
	failed := true
	defer func() {
		if err := m.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "ambit-demo: cleanup:", err)
			failed, code = true, 1
		}
		keepOrRemove(ctx, m, failed || keep)
	}()
	r, err := runScenario(ctx, m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-demo:", err)
		return 1
	}
	r.Elapsed = time.Since(start)
	r.Print(os.Stdout)
	if r.Failed() {
		return 1
	}
	failed = false
	return 0
}

// keepOrRemove keeps the work dir (component logs) for a failed run or when asked, and
// removes it otherwise, and always after an interrupt: Ctrl-C leaves nothing behind.
func keepOrRemove(ctx context.Context, m *mesh.Mesh, keep bool) {
	if keep && !errors.Is(context.Cause(ctx), context.Canceled) {
		fmt.Fprintln(os.Stderr, "ambit-demo: component logs kept in", m.Dir)
		return
	}
	m.RemoveWorkDir()
}
