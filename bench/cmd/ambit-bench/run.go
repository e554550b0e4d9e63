package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// run starts the mesh, measures, prints and writes the results, and always removes
// the mesh. It returns the exit status.
func run(ctx context.Context, c config) int {
	start := time.Now()
	if _, err := cluster.CleanupStale("ambit-bench"); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench: cleaning up an earlier run:", err)
	}
	logf("starting a two-node mesh")
	m, err := mesh.Start(ctx, mesh.Options{
		Name: "ambit-bench", Bin: c.bin, Nodes: ztunnelNodes, Waypoints: waypoints(cases(c.topologies, c.modes)),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench: start mesh:", err)
		if m != nil {
			fmt.Fprintln(os.Stderr, "ambit-bench: component logs kept in", m.Dir)
		}
		return 1
	}
	res := &report.Results{RunID: m.Cluster.RunID, Started: start, Settings: settings(c)}
	defer func() {
		if err := m.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "ambit-bench: cleanup:", err)
		}
		if res.Failed() || c.keepLogs {
			fmt.Fprintln(os.Stderr, "ambit-bench: component logs kept in", m.Dir)
		} else {
			m.RemoveWorkDir()
		}
	}()
	measureAll(ctx, c, m, res)
	res.Elapsed = time.Since(start).Round(time.Second).String()
	res.Summarize()
	md := res.Markdown()
	fmt.Println()
	fmt.Print(md)
	if err := res.WriteFiles(c.out); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench:", err)
		return 1
	}
	logf("wrote %s/results.{json,md}", c.out)
	if res.Failed() {
		return 1
	}
	return 0
}

// measureAll lists every case in res, deploys them and runs the rounds; errors land
// in res (per case, or on every case when the deployment itself fails).
func measureAll(ctx context.Context, c config, m *mesh.Mesh, res *report.Results) {
	todo := cases(c.topologies, c.modes)
	for _, bc := range todo { // in --topologies and --modes order: the tables' rows
		res.Mode(bc.topology, bc.mode)
	}
	b := &bench{cfg: c, m: m, ztunnels: map[string]proxy{}, profiled: map[benchCase]bool{}}
	for _, n := range ztunnelNodes {
		b.ztunnels[n] = proxy{"ztunnel " + n, m.Nodes[n].Ztunnel.Pid}
	}
	logf("deploying client and server pods for %d cases; measuring will take about %s",
		len(todo), estimate(c, len(todo)).Round(time.Minute))
	if err := b.deploy(ctx, todo); err != nil {
		for _, bc := range todo {
			res.Mode(bc.topology, bc.mode).Error = err.Error()
		}
		return
	}
	b.recordIdle(todo, res)
	defer b.recordPeak(todo, res)
	for _, bc := range todo {
		if md := res.Mode(bc.topology, bc.mode); md.Error == "" {
			if err := b.verify(ctx, bc); err != nil {
				md.Error = err.Error()
			}
		}
	}
	for r := range c.rounds {
		b.runRound(ctx, r, todo, res)
	}
}

// runRound measures every case once: first the latency phase (each case's fixed-rate
// runs, cases and connection counts in round r's rotation), then the bulk phase
// (connection rate and throughput). Keeping bulk transfers after every latency run of
// the first round keeps its memory readings free of their buffers. A case's round
// counts only when both phases completed.
func (b *bench) runRound(ctx context.Context, r int, todo []benchCase, res *report.Results) {
	c := b.cfg
	figs := map[benchCase]*report.Figures{}
	for _, bc := range rotation(todo, r) {
		md := res.Mode(bc.topology, bc.mode)
		if !runnable(ctx, md) {
			continue
		}
		logf("round %d/%d, latency: %s", r+1, c.rounds, bc)
		f := &report.Figures{}
		peaks, err := b.latencyPoints(ctx, bc, rotation(c.latencyConns, r), f)
		if err != nil {
			fail(ctx, md, bc, err)
			continue
		}
		figs[bc] = f
		if r == 0 && len(md.Proxies) == len(peaks) {
			for i, p := range peaks {
				md.Proxies[i].LoadRSSMiB = mib(p)
			}
		}
		if l := f.At(report.HeadlineConns); l != nil {
			logf("  %s: %d conns p50/p90/p99 %.0f/%.0f/%.0f µs, proxies %.3f cores", bc, l.Conns, l.P50Micros, l.P90Micros, l.P99Micros, l.ProxyCores)
		}
	}
	for _, bc := range rotation(todo, r) {
		md, f := res.Mode(bc.topology, bc.mode), figs[bc]
		if f == nil || !runnable(ctx, md) {
			continue
		}
		logf("round %d/%d, bulk: %s", r+1, c.rounds, bc)
		if err := b.bulk(ctx, bc, f); err != nil {
			fail(ctx, md, bc, err)
			continue
		}
		md.Rounds = append(md.Rounds, *f)
		logf("  %s: %.2f / %.2f Gbit/s, %.0f conns/s, %.2f CPU-s/GB", bc, f.Gbps1, f.Gbps4, f.ConnsPerSec, f.ProxyCPUPerGB)
	}
}

// runnable reports whether the case may run: it has not failed and ctx is alive (else
// the case records the interruption).
func runnable(ctx context.Context, md *report.Mode) bool {
	if md.Error != "" {
		return false
	}
	if ctx.Err() != nil {
		md.Error = "interrupted: " + context.Cause(ctx).Error()
		return false
	}
	return true
}

// fail records the case's first error (an interruption as such) and logs it.
func fail(ctx context.Context, md *report.Mode, bc benchCase, err error) {
	md.Error = err.Error()
	if ctx.Err() != nil {
		md.Error = "interrupted: " + context.Cause(ctx).Error()
	}
	logf("%s failed: %v", bc, err)
}

// recordIdle reads the memory of each case's proxies before any traffic.
func (b *bench) recordIdle(todo []benchCase, res *report.Results) {
	for _, bc := range todo {
		if bc.mode == report.Baseline { // its ztunnels are off the path
			continue
		}
		md := res.Mode(bc.topology, bc.mode)
		idle, err := b.sampleProxies(bc)
		if err != nil {
			md.Error = err.Error()
			continue
		}
		for i, s := range idle {
			md.Proxies = append(md.Proxies, report.Proxy{Name: b.pairs[bc].proxies[i].name, IdleRSSMiB: mib(s.RSS)})
		}
	}
}

// recordPeak reads each case's proxies' peak memory (VmHWM) at the end of the run.
func (b *bench) recordPeak(todo []benchCase, res *report.Results) {
	for _, bc := range todo {
		md := res.Mode(bc.topology, bc.mode)
		if end, err := b.sampleProxies(bc); err == nil && len(md.Proxies) == len(end) {
			for i, s := range end {
				md.Proxies[i].PeakRSSMiB = mib(s.HWM)
			}
		}
	}
}

func settings(c config) report.Settings {
	s := report.Settings{
		Rounds: c.rounds, Topologies: c.topologies, IperfSeconds: int(c.iperfTime / time.Second), LatencyDuration: c.latencyTime.String(),
		LatencyQPS: c.qps, LatencyConns: c.latencyConns, PayloadBytes: c.payload, ConnDuration: c.connTime.String(),
		ConnConns: c.conns, CPUs: runtime.NumCPU(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		s.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			s.LoadAvgAtStart = strings.Join(f[:3], " ")
		}
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ambit-bench: "+format+"\n", args...)
}
