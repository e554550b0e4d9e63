// Command ambit-bench measures Ambit's data plane against plain TCP and two baselines
// of encrypted forwarding on this machine (root): it starts a two-node mesh
// (e2e/mesh) and, per topology (cross-node: client pod on node-a, server pod on node-b;
// same-node: both on node-a) and mode ("direct": not enrolled; "l4": ambient, through
// the ztunnels over HBONE to the server's Service; "l7": as l4 with a waypoint on the
// server's node for that Service; "peer-hbone":
// not enrolled, through Istio's Go HBONE client and server in the pods; "plain-tls":
// not enrolled, through a minimal TLS forwarder in the pods), gives each case its own
// namespace and pods. In rotated rounds it measures latency at a fixed rate over 1, 4
// and 16 connections (fortio), the connection rate (fortio), throughput (iperf3) and the
// CPU and memory of the processes carrying each case's bytes. It prints Markdown
// tables, writes results.json and results.md, and exits 1 when a case failed. It is
// what `make bench` runs; bench/README.md explains the output.
// Method: /work/shared/spec/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config is the run's settings, from flags.
type config struct {
	bin, fortio, iperf3, out string
	topologies, modes        []string
	rounds                   int
	iperfTime                time.Duration
	latencyTime, connTime    time.Duration
	latencyConns             []int
	qps, conns, payload      int
	keepLogs                 bool
	profileDir               string
}

// Durations of one run of each tool: the defaults keep `make bench` near a quarter of
// an hour; --full uses performance.md's.
const (
	defaultIperfTime, fullIperfTime     = 3 * time.Second, 10 * time.Second
	defaultLatencyTime, fullLatencyTime = 8 * time.Second, 20 * time.Second
	defaultConnTime, fullConnTime       = 2 * time.Second, 5 * time.Second
)

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "directory with the built binaries (make build)")
	flag.StringVar(&c.fortio, "fortio", "", "fortio binary (default: <bin>/../.cache/tools/fortio, as hack/install-bench-tools.sh installs it)")
	flag.StringVar(&c.iperf3, "iperf3", "iperf3", "iperf3 binary")
	flag.StringVar(&c.out, "out", "bench/out", "directory for results.json and results.md")
	topologies := flag.String("topologies", strings.Join(allTopologies, ","), "comma-separated topologies to measure")
	modes := flag.String("modes", strings.Join(modeNames(), ","), "comma-separated modes to measure, in the first round's order")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds per case; figures are medians over rounds")
	flag.DurationVar(&c.iperfTime, "iperf-time", defaultIperfTime, "length of each iperf3 run (whole seconds)")
	flag.DurationVar(&c.latencyTime, "latency-time", defaultLatencyTime, "length of each fixed-rate latency run (one per connection count)")
	flag.DurationVar(&c.connTime, "conn-time", defaultConnTime, "length of each connection-rate run")
	latencyConns := flag.String("latency-conns", "1,4,16", "comma-separated connection counts of the latency runs (the targets read 4)")
	flag.IntVar(&c.qps, "qps", 1000, "request rate of the latency runs")
	flag.IntVar(&c.conns, "conns", 4, "connections of the connection-rate run and of the warm-up")
	flag.IntVar(&c.payload, "payload", 1024, "request payload bytes of the latency runs (echoed back)")
	full := flag.Bool("full", false, "use performance.md's durations: iperf3 10s, latency 20s per point, connection rate 5s")
	timeout := flag.Duration("timeout", 0, "overall deadline (default: twice the estimated measuring time plus 10 minutes)")
	flag.StringVar(&c.profileDir, "profile", "", "directory for CPU profiles of ztunnels and waypoints over each case's first 4-connection latency run")
	flag.BoolVar(&c.keepLogs, "keep-logs", false, "keep the mesh work dir with component logs even on success")
	flag.Parse()
	if *full {
		c.iperfTime, c.latencyTime, c.connTime = fullIperfTime, fullLatencyTime, fullConnTime
	}
	var err error
	if c.topologies, err = parseList("topologies", *topologies, allTopologies); err == nil {
		if c.modes, err = parseList("modes", *modes, modeNames()); err == nil {
			c.latencyConns, err = parseConns(*latencyConns)
		}
	}
	if err == nil && c.profileDir != "" {
		err = os.MkdirAll(c.profileDir, 0o755)
	}
	if err == nil {
		err = c.resolve()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench:", err)
		os.Exit(2)
	}
	if *timeout == 0 {
		*timeout = 2*estimate(c, len(cases(c.topologies, c.modes))) + 10*time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	os.Exit(run(ctx, c))
}

// resolve makes paths absolute (pod processes run through nsenter) and checks the
// settings and the tools.
func (c *config) resolve() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (it creates network namespaces and loads eBPF)")
	}
	if c.rounds < 1 || c.iperfTime < time.Second || c.latencyTime <= 0 || c.connTime <= 0 || c.qps < 1 || c.conns < 1 || c.payload < 0 {
		return fmt.Errorf("bad settings: rounds and rates must be positive, iperf-time at least 1s")
	}
	var err error
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}
	if c.fortio == "" {
		c.fortio = filepath.Join(c.bin, "..", ".cache", "tools", "fortio")
	}
	if c.fortio, err = filepath.Abs(c.fortio); err != nil {
		return err
	}
	if _, err := os.Stat(c.fortio); err != nil {
		return fmt.Errorf("fortio not found (run hack/install-bench-tools.sh): %w", err)
	}
	if c.out, err = filepath.Abs(c.out); err != nil {
		return err
	}
	for _, mode := range c.modes {
		s := spec(mode)
		need := s.forwarder
		if s.waypoint {
			need = waypointBin
		}
		if need == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.bin, need)); err != nil {
			return fmt.Errorf("mode %s needs %s in --bin (make bench builds it): %w", mode, need, err)
		}
	}
	return nil
}
