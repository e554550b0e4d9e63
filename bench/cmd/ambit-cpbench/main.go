// Command ambit-cpbench measures istiod-lite at scale (F-CP-4): for each config source
// (file, kube) it loads synthetic pods and services, connects simulated ztunnels (delta
// xDS clients), changes pods at a steady rate and reports event-to-push latency, bytes
// per change, istiod-lite's CPU and memory, and the resources resent after a restart.
// It prints a Markdown table and writes controlplane.json and controlplane.md to --out.
// `make bench` runs it after ambit-bench; bench/README.md explains the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ambitmesh/ambit/bench/controlplane"
)

func main() {
	cfg := controlplane.Config{}
	bin := flag.String("bin", "bin", "directory with istiod-lite (make build)")
	sources := flag.String("sources", "kube,file", "comma-separated config sources to measure, in order: kube, file")
	flag.StringVar(&cfg.KubeBinDir, "kube-bin", ".cache/kube/v1.34.10", "directory with etcd and kube-apiserver (make kube-tools)")
	out := flag.String("out", "bench/out", "directory for controlplane.json and controlplane.md")
	flag.IntVar(&cfg.Pods, "pods", 10000, "synthetic pods")
	flag.IntVar(&cfg.Services, "services", 1000, "synthetic services")
	flag.IntVar(&cfg.Clients, "clients", 100, "simulated ztunnels (delta xDS clients)")
	flag.Float64Var(&cfg.Rate, "rate", 100, "pod changes per second")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "how long the changes go on")
	istiodArgs := flag.String("istiod-args", "", "extra istiod-lite flags, space-separated (e.g. --debounce=40ms)")
	istiodLog := flag.String("istiod-log-level", "", "istiod-lite's --log-level (default: its own)")
	flag.BoolVar(&cfg.Profile, "profile", false, "save istiod-lite's CPU profile over the churn in the work dir (implies --keep)")
	keep := flag.Bool("keep", false, "keep the work dir (config, cluster data, istiod-lite logs) even on success")
	timeout := flag.Duration("timeout", 20*time.Minute, "overall deadline")
	flag.Parse()

	cfg.IstiodArgs = strings.Fields(*istiodArgs)
	if *istiodLog != "" {
		cfg.IstiodArgs = append(cfg.IstiodArgs, "--log-level="+*istiodLog)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Logger = log
	var err error
	if cfg.Istiod, err = filepath.Abs(filepath.Join(*bin, "istiod-lite")); err == nil {
		cfg.KubeBinDir, err = filepath.Abs(cfg.KubeBinDir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-cpbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	work, err := os.MkdirTemp("", "ambit-cpbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-cpbench:", err)
		os.Exit(2)
	}
	failed := false
	var results []*controlplane.Result
	for _, s := range strings.Split(*sources, ",") {
		c := cfg
		c.Source, c.WorkDir = strings.TrimSpace(s), work
		r, err := controlplane.Run(ctx, c)
		if err != nil {
			log.Error("control-plane bench failed", "source", c.Source, "err", err, "logs", filepath.Join(work, c.Source))
			failed = true
			continue
		}
		results = append(results, r)
		// The next run starts on a clean heap: the 100 clients' state of this one is
		// garbage, and collecting it during the next churn would take CPU from it.
		runtime.GC()
		debug.FreeOSMemory()
	}
	if err := write(*out, results); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-cpbench:", err)
		failed = true
	}
	fmt.Print("\n## Control plane (istiod-lite, F-CP-4)\n\n" + controlplane.Markdown(results))
	if failed || *keep || cfg.Profile {
		fmt.Fprintln(os.Stderr, "ambit-cpbench: logs kept in", work)
	} else {
		os.RemoveAll(work)
	}
	if failed {
		os.Exit(1)
	}
}

func write(dir string, results []*controlplane.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "controlplane.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	md := "# Control plane (istiod-lite, F-CP-4)\n\n" + controlplane.Markdown(results)
	if err := os.WriteFile(filepath.Join(dir, "controlplane.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
