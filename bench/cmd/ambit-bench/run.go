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

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// modes are measured in this order in even rounds and reversed in odd ones (ABBA), so
// a slow drift of the shared machine's load weighs on both alike.
var modes = []string{"direct", "l4"}

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
	for _, name := range modes {
		res.Mode(name)
	}
	b := &bench{cfg: c, m: m}
	for _, n := range ztunnelNodes {
		b.ztunnels = append(b.ztunnels, m.Nodes[n].Ztunnel.Pid)
	}
	logf("deploying client and server pods for modes %v", modes)
	if err := b.deploy(ctx); err != nil {
		for _, name := range modes {
			res.Mode(name).Error = err.Error()
		}
		return
	}
	idle, err := b.sampleZtunnels()
	if err != nil {
		res.Mode("l4").Error = err.Error()
		return
	}
	res.Footprint.IdleRSSMiB = perNode(idle, func(s measure.ProcSample) int64 { return s.RSS })
	defer func() {
		if end, err := b.sampleZtunnels(); err == nil {
			res.Footprint.PeakRSSMiB = perNode(end, func(s measure.ProcSample) int64 { return s.HWM })
		}
	}()
	for _, name := range modes {
		if err := b.verify(ctx, name); err != nil {
			res.Mode(name).Error = err.Error()
		}
	}
	for r := range c.rounds {
		order := modes
		if r%2 == 1 {
			order = []string{modes[1], modes[0]}
		}
		for _, name := range order {
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
			if name == "l4" && res.Footprint.LoadRSSMiB == nil {
				res.Footprint.LoadRSSMiB = map[string]float64{}
				for i, p := range peaks {
					res.Footprint.LoadRSSMiB[ztunnelNodes[i]] = mib(p)
				}
			}
			logf("  %s: %.2f / %.2f Gbit/s, %.0f conns/s, p50/p90/p99 %.0f/%.0f/%.0f µs, ztunnels %.3f cores, %.2f CPU-s/GB",
				name, f.Gbps1, f.Gbps4, f.ConnsPerSec, f.P50Micros, f.P90Micros, f.P99Micros, f.ZtunnelCores, f.ZtunnelCPUPerGB)
		}
	}
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

// perNode maps the ztunnels' samples to MiB per node name with get.
func perNode(samples []measure.ProcSample, get func(measure.ProcSample) int64) map[string]float64 {
	out := map[string]float64{}
	for i, s := range samples {
		out[ztunnelNodes[i]] = mib(get(s))
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ambit-bench: "+format+"\n", args...)
}
