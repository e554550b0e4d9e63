package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// allModes are the modes the benchmark knows, in the order of the first round; later
// rounds rotate it (rotation), so a slow drift of the shared machine's load does not
// weigh on one mode more than on another.
var allModes = []string{report.Baseline, report.L4, report.PeerHBONE, report.PlainTLS}

// ztunnelNodes are the nodes, in the order of bench.ztunnels.
var ztunnelNodes = []string{"node-a", "node-b"}

// run starts the mesh, measures, prints and writes the results, and always removes
// the mesh. It returns the exit status.
func run(ctx context.Context, c config) int {
	start := time.Now()
	if _, err := cluster.CleanupStale("ambit-bench"); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench: cleaning up an earlier run:", err)
	}
	logf("starting a two-node mesh")
	m, err := mesh.Start(ctx, mesh.Options{
		Name: "ambit-bench", Bin: c.bin, Nodes: []string{"node-a", "node-b"},
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

// measureAll deploys the pods and runs the rounds; errors land in res (per mode, or
// on every mode when the deployment itself fails).
func measureAll(ctx context.Context, c config, m *mesh.Mesh, res *report.Results) {
	for _, name := range c.modes {
		res.Mode(name)
	}
	b := &bench{cfg: c, m: m}
	for _, n := range ztunnelNodes {
		b.ztunnels = append(b.ztunnels, proxy{"ztunnel " + n, m.Nodes[n].Ztunnel.Pid})
	}
	logf("deploying client and server pods for modes %v", c.modes)
	if err := b.deploy(ctx); err != nil {
		for _, name := range c.modes {
			res.Mode(name).Error = err.Error()
		}
		return
	}
	for _, name := range c.modes {
		if name == report.Baseline { // its ztunnels are off the path
			continue
		}
		idle, err := b.sampleProxies(name)
		if err != nil {
			res.Mode(name).Error = err.Error()
			continue
		}
		md := res.Mode(name)
		for i, s := range idle {
			md.Proxies = append(md.Proxies, report.Proxy{Name: b.pairs[name].proxies[i].name, IdleRSSMiB: mib(s.RSS)})
		}
	}
	defer func() {
		for _, md := range res.Modes {
			if end, err := b.sampleProxies(md.Name); err == nil && len(md.Proxies) == len(end) {
				for i, s := range end {
					md.Proxies[i].PeakRSSMiB = mib(s.HWM)
				}
			}
		}
	}()
	for _, name := range c.modes {
		if res.Mode(name).Error != "" {
			continue
		}
		if err := b.verify(ctx, name); err != nil {
			res.Mode(name).Error = err.Error()
		}
	}
	for r := range c.rounds {
		for _, name := range rotation(c.modes, r) {
			md := res.Mode(name)
			if md.Error != "" {
				continue
			}
			if ctx.Err() != nil {
				md.Error = "interrupted: " + context.Cause(ctx).Error()
				continue
			}
			logf("round %d/%d: %s", r+1, c.rounds, name)
			f, peaks, err := b.round(ctx, name)
			if err != nil {
				md.Error = err.Error()
				if ctx.Err() != nil {
					md.Error = "interrupted: " + context.Cause(ctx).Error()
				}
				logf("%s failed: %v", name, err)
				continue
			}
			md.Rounds = append(md.Rounds, f)
			if len(md.Rounds) == 1 && len(md.Proxies) == len(peaks) {
				for i, p := range peaks {
					md.Proxies[i].LoadRSSMiB = mib(p)
				}
			}
			logf("  %s: %.2f / %.2f Gbit/s, %.0f conns/s, p50/p90/p99 %.0f/%.0f/%.0f µs, proxies %.3f cores, %.2f CPU-s/GB",
				name, f.Gbps1, f.Gbps4, f.ConnsPerSec, f.P50Micros, f.P90Micros, f.P99Micros, f.ProxyCores, f.ProxyCPUPerGB)
		}
	}
}

// rotation is the order of round r (from 0): modes rotated left by r, so each mode
// takes each position in turn.
func rotation(modes []string, r int) []string {
	k := r % len(modes)
	return append(slices.Clone(modes[k:]), modes[:k]...)
}

func settings(c config) report.Settings {
	s := report.Settings{
		Rounds: c.rounds, IperfSeconds: int(c.iperfTime / time.Second), LatencyDuration: c.latencyTime.String(),
		LatencyQPS: c.qps, LatencyConns: c.conns, PayloadBytes: c.payload, ConnDuration: c.connTime.String(),
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
