// Command ambit-bench measures Ambit's data plane against plain TCP and two baselines
// of encrypted forwarding on this machine (root): it starts a two-node mesh
// (e2e/mesh), puts a client pod on node-a and a server pod on node-b in each mode's
// namespace ("direct": not enrolled; "l4": ambient, through both ztunnels over HBONE;
// "peer-hbone": not enrolled, through Istio's Go HBONE client and server in the pods;
// "plain-tls": not enrolled, through a minimal TLS forwarder in the pods), and in
// rotated rounds measures throughput (iperf3), latency at a fixed rate and connection
// rate (fortio) and the CPU and memory of the processes carrying each mode's bytes.
// It prints a Markdown table, writes results.json and results.md, and exits 1 when a
// mode failed. It is what `make bench` runs; bench/README.md explains the output.
// Method: /work/shared/spec/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the run's settings, from flags.
type config struct {
	bin, fortio, iperf3, out string
	modes                    []string
	rounds                   int
	iperfTime                time.Duration
	latencyTime, connTime    time.Duration
	qps, conns, payload      int
	keepLogs                 bool
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "directory with the built binaries (make build)")
	flag.StringVar(&c.fortio, "fortio", "", "fortio binary (default: <bin>/../.cache/tools/fortio, as hack/install-bench-tools.sh installs it)")
	flag.StringVar(&c.iperf3, "iperf3", "iperf3", "iperf3 binary")
	flag.StringVar(&c.out, "out", "bench/out", "directory for results.json and results.md")
	modes := flag.String("modes", strings.Join(allModes, ","), "comma-separated modes to measure, in the first round's order")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds per mode; figures are medians over rounds")
	flag.DurationVar(&c.iperfTime, "iperf-time", 4*time.Second, "length of each iperf3 run (whole seconds)")
	flag.DurationVar(&c.latencyTime, "latency-time", 15*time.Second, "length of each fixed-rate latency run")
	flag.DurationVar(&c.connTime, "conn-time", 2*time.Second, "length of each connection-rate run")
	flag.IntVar(&c.qps, "qps", 1000, "request rate of the latency run")
	flag.IntVar(&c.conns, "conns", 4, "connections of the latency and connection-rate runs")
	flag.IntVar(&c.payload, "payload", 1024, "request payload bytes of the latency run (echoed back)")
	full := flag.Bool("full", false, "use performance.md's durations: iperf3 10s, latency 20s, connection rate 5s (about 9 minutes with 3 rounds of 4 modes)")
	timeout := flag.Duration("timeout", 30*time.Minute, "overall deadline")
	flag.BoolVar(&c.keepLogs, "keep-logs", false, "keep the mesh work dir with component logs even on success")
	flag.Parse()
	if *full {
		c.iperfTime, c.latencyTime, c.connTime = 10*time.Second, 20*time.Second, 5*time.Second
	}
	var err error
	if c.modes, err = parseModes(*modes); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench:", err)
		os.Exit(2)
	}
	if err := c.resolve(); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-bench:", err)
		os.Exit(2)
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
		if !forwarded(mode) {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.bin, forwarderBinary(mode))); err != nil {
			return fmt.Errorf("mode %s needs %s in --bin (make bench builds it): %w", mode, forwarderBinary(mode), err)
		}
	}
	return nil
}

// parseModes parses the --modes list: known modes, each once, at least one.
func parseModes(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		switch {
		case m == "":
			continue
		case !slices.Contains(allModes, m):
			return nil, fmt.Errorf("--modes: unknown mode %q (known: %s)", m, strings.Join(allModes, ", "))
		case slices.Contains(out, m):
			return nil, fmt.Errorf("--modes: %s given twice", m)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--modes: no mode given")
	}
	return out, nil
}
