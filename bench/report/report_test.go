package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pts builds latency points at 1, 4 and 16 conns from p50/p90/p99 and proxy cores at
// 4 conns; the other points are offset so a mix-up shows.
func pts(p50, p90, p99, cores float64) []Latency {
	return []Latency{
		{Conns: 1, QPS: 1000, P50Micros: p50 - 5, P90Micros: p90 - 5, P99Micros: p99 - 5, ProxyCores: cores / 2, ProxyCPUPer1k: cores / 2},
		{Conns: 4, QPS: 1000, P50Micros: p50, P90Micros: p90, P99Micros: p99, ProxyCores: cores, ProxyCPUPer1k: cores},
		{Conns: 16, QPS: 940, P50Micros: p50 + 10, P90Micros: p90 + 10, P99Micros: p99 + 10, ProxyCores: 2 * cores, ProxyCPUPer1k: 2 * cores},
	}
}

func sampleResults() *Results {
	r := &Results{RunID: "ambit-bench-x", Settings: Settings{Rounds: 3, LatencyQPS: 1000, LatencyConns: []int{1, 4, 16}}}
	d := r.Mode(CrossNode, Baseline)
	d.Rounds = []Figures{
		{Gbps1: 50, Gbps4: 60, ConnsPerSec: 9000, Latency: pts(30, 60, 130, 0)},
		{Gbps1: 54, Gbps4: 58, ConnsPerSec: 9500, Latency: pts(32, 64, 136, 0)},
		{Gbps1: 40, Gbps4: 62, ConnsPerSec: 8000, Latency: pts(28, 70, 140, 0)},
	}
	l4 := r.Mode(CrossNode, L4)
	l4.Rounds = []Figures{
		{Gbps1: 10.8, Gbps4: 12, ConnsPerSec: 3000, ProxyCPUPerGB: 0.8, Latency: pts(60, 130, 250, 0.05)},
		{Gbps1: 9, Gbps4: 11, ConnsPerSec: 2500, ProxyCPUPerGB: 0.9, Latency: pts(70, 140, 280, 0.0701)},
	}
	l4.Proxies = []Proxy{{"ztunnel node-a", 9.5, 12, 30}, {"ztunnel node-b", 9.25, 16, 31}}
	l7 := r.Mode(CrossNode, L7)
	l7.Rounds = []Figures{{Gbps1: 3, Gbps4: 4, ConnsPerSec: 1500, ProxyCPUPerGB: 2, Latency: pts(400, 700, 900, 0.3)}}
	l7.Proxies = []Proxy{{"ztunnel node-a", 9.5, 12, 30}, {"ztunnel node-b", 9.25, 16, 31}, {"waypoint (node-b)", 20, 25, 40}}
	peer := r.Mode(CrossNode, PeerHBONE)
	peer.Rounds = []Figures{{Gbps1: 5, Gbps4: 6, ConnsPerSec: 1000, ProxyCPUPerGB: 1.2, Latency: pts(100, 200, 300, 0.12)}}
	peer.Proxies = []Proxy{{"client forwarder", 10, 18, 40}, {"server forwarder", 10, 21, 41}}
	tls := r.Mode(CrossNode, PlainTLS)
	tls.Rounds = []Figures{{Gbps1: 8, Gbps4: 9, ConnsPerSec: 2000, ProxyCPUPerGB: 0.8, Latency: pts(70, 150, 260, 0.06)}}
	// Same-node: faster baseline, slower l4, so a cross-topology comparison would show.
	r.Mode(SameNode, Baseline).Rounds = []Figures{{Gbps1: 80, Gbps4: 90, ConnsPerSec: 12000, Latency: pts(20, 40, 100, 0)}}
	sl4 := r.Mode(SameNode, L4)
	sl4.Rounds = []Figures{{Gbps1: 20, Gbps4: 22, ConnsPerSec: 4000, ProxyCPUPerGB: 0.7, Latency: pts(50, 90, 400, 0.03)}}
	sl4.Proxies = []Proxy{{"ztunnel node-a", 9.5, 13, 30}}
	r.Summarize()
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func targetStatuses(r *Results) map[string]string {
	out := map[string]string{}
	for _, tg := range r.Targets {
		out[tg.Figure] = tg.Status
	}
	return out
}

func TestSummarize(t *testing.T) {
	r := sampleResults()
	d, l4 := r.find(CrossNode, Baseline).Median, r.find(CrossNode, L4).Median
	if d.Gbps1 != 50 || d.At(4).P99Micros != 136 || d.ConnsPerSec != 9000 || d.At(16).P99Micros != 146 || d.At(1).P50Micros != 25 {
		t.Fatalf("direct medians %+v", d)
	}
	if !near(l4.Gbps1, 9.9) || l4.At(4).P99Micros != 265 || !near(l4.At(4).ProxyCores, 0.06005) || !near(l4.ProxyCPUPerGB, 0.85) {
		t.Fatalf("l4 medians (even count: mean of the middle two) %+v", l4)
	}
	if got := []int{l4.Latency[0].Conns, l4.Latency[1].Conns, l4.Latency[2].Conns}; !slices.Equal(got, []int{1, 4, 16}) {
		t.Fatalf("latency points out of order: %v", got)
	}
	if r.find(SameNode, L7) != nil {
		t.Fatal("a mode the run did not include was added")
	}
	var got []string
	for _, c := range r.Comparisons {
		got = append(got, c.Topology+":"+c.Mode+"/"+c.Against)
	}
	want := "cross-node:l4/direct cross-node:l7/direct cross-node:peer-hbone/direct cross-node:plain-tls/direct " +
		"cross-node:l4/peer-hbone cross-node:l4/plain-tls cross-node:l7/l4 same-node:l4/direct"
	if strings.Join(got, " ") != want {
		t.Fatalf("comparisons %v, want %s", got, want)
	}
	c := r.comparison(CrossNode, L4, Baseline)
	if l := c.At(4); !near(c.Gbps1Ratio, 9.9/50) || l.AddedP99 != 265-136 || l.AddedP50 != 65-30 || c.CPUPerGBRatio != 0 || l.CoresRatio != 0 {
		t.Fatalf("l4/direct %+v", c)
	}
	if l := c.At(16); l.AddedP99 != 275-146 {
		t.Fatalf("l4/direct at 16 conns %+v", l)
	}
	if c := r.comparison(CrossNode, L4, PeerHBONE); !near(c.Gbps1Ratio, 9.9/5) || !near(c.CPUPerGBRatio, 0.85/1.2) || !near(c.At(4).CoresRatio, 0.06005/0.12) {
		t.Fatalf("l4/peer-hbone %+v", c)
	}
	if c := r.comparison(CrossNode, L7, L4); c.At(4).AddedP99 != 900-265 || !near(c.At(4).CoresRatio, 0.3/0.06005) || !near(c.CPUPerGBRatio, 2/0.85) {
		t.Fatalf("l7/l4 (the waypoint's share) %+v", c)
	}
	if c := r.comparison(SameNode, L4, Baseline); c.At(4).AddedP99 != 300 || !near(c.Gbps1Ratio, 0.25) {
		t.Fatalf("same-node l4/direct compares across topologies: %+v", c)
	}
	for fig, want := range map[string]string{
		figVsPeer: "missed", // 1.98×
		figVsTLS:  "missed", // 1.06×
		figP99:    "met",    // +129 µs cross-node; same-node's +300 must not count
		figCores:  "missed", // 0.06005 > 0.06
		figRSS:    "met",
		figL7:     "met", // +764 µs
		figWDS:    "not measured: " + controlPlaneNotMeasured,
	} {
		if s := targetStatuses(r)[fig]; s != want {
			t.Errorf("target %q: %q, want %q", fig, s, want)
		}
	}
	if r.Failed() {
		t.Error("Failed with no mode error")
	}
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Results)
		want   map[string]string
	}{
		{name: "ratios met", change: func(r *Results) {
			r.find(CrossNode, PeerHBONE).Rounds[0].Gbps1 = 4.9
			r.find(CrossNode, PlainTLS).Rounds[0].ProxyCPUPerGB = 0.86
		}, want: map[string]string{figVsPeer: "met", figVsTLS: "met"}},
		{name: "peer mode not run", change: func(r *Results) {
			r.Modes = slices.DeleteFunc(r.Modes, func(m *Mode) bool { return m.Name == PeerHBONE })
		}, want: map[string]string{figVsPeer: "not measured: needs the peer-hbone mode (cross-node)", figVsTLS: "missed"}},
		{name: "plain-tls failed before a round", change: func(r *Results) {
			m := r.find(CrossNode, PlainTLS)
			m.Rounds, m.Error = nil, "forwarder exited"
		}, want: map[string]string{figVsTLS: "not measured: no plain-tls result"}},
		{name: "no 4-conn point", change: func(r *Results) {
			for _, m := range r.Modes {
				for i := range m.Rounds {
					m.Rounds[i].Latency = slices.DeleteFunc(m.Rounds[i].Latency, func(l Latency) bool { return l.Conns == 4 })
				}
			}
		}, want: map[string]string{figP99: "not measured: needs the 4-connection latency point",
			figCores: "not measured: needs the 4-connection latency point", figVsPeer: "missed"}},
		{name: "cross-node l4 not run", change: func(r *Results) {
			r.Modes = slices.DeleteFunc(r.Modes, func(m *Mode) bool { return m.Name == L4 && m.Topology == CrossNode })
		}, want: map[string]string{figP99: "not measured: needs the l4 mode (cross-node)", figCores: "not measured: needs the l4 mode (cross-node)",
			figRSS: "not measured: no cross-node l4 latency run"}},
		{name: "l7 just in time", change: func(r *Results) {
			r.find(CrossNode, L7).Rounds = []Figures{{Gbps1: 3, Latency: pts(300, 500, 1136, 0.2)}}
		}, want: map[string]string{figL7: "met"}}, // +1000 µs
		{name: "l7 too slow", change: func(r *Results) {
			r.find(CrossNode, L7).Rounds = []Figures{{Gbps1: 3, Latency: pts(300, 500, 1200, 0.2)}}
		}, want: map[string]string{figL7: "missed"}},
		{name: "l7 not run", change: func(r *Results) {
			r.Modes = slices.DeleteFunc(r.Modes, func(m *Mode) bool { return m.Name == L7 })
		}, want: map[string]string{figL7: "not measured: needs the l7 mode (cross-node)"}},
		{name: "l7 failed", change: func(r *Results) {
			m := r.find(CrossNode, L7)
			m.Rounds, m.Error = nil, "waypoint exited"
		}, want: map[string]string{figL7: "not measured: no l7 result"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleResults()
			tc.change(r)
			r.Summarize()
			got := targetStatuses(r)
			for fig, want := range tc.want {
				if got[fig] != want {
					t.Errorf("target %q: %q, want %q", fig, got[fig], want)
				}
			}
		})
	}
}

func TestFailedMode(t *testing.T) {
	r := sampleResults()
	r.find(CrossNode, L4).Error = "iperf3: connection reset"
	r.Summarize()
	if !r.Failed() {
		t.Error("Failed is false with a mode error")
	}
	if md := r.Markdown(); !strings.Contains(md, "**cross-node l4 FAILED** after 2 complete rounds: iperf3: connection reset") {
		t.Errorf("markdown does not report the failure:\n%s", md)
	}
}

func TestNoBaseline(t *testing.T) {
	r := &Results{}
	r.Mode(CrossNode, L4).Rounds = []Figures{{Gbps1: 1, Latency: pts(1, 2, 3, 0)}}
	r.Mode(CrossNode, Baseline).Error = "setup failed"
	r.Summarize()
	if len(r.Comparisons) != 0 {
		t.Fatalf("compared with a baseline that has no rounds: %+v", r.Comparisons)
	}
	if md := r.Markdown(); !strings.Contains(md, "| direct | — |") {
		t.Errorf("missing placeholder row:\n%s", md)
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleResults()
	md := r.Markdown()
	for _, want := range []string{
		"### cross-node: client pod on node-a, server pod on node-b",
		"### same-node: client and server pods both on node-a",
		"| direct | 50.00 | 60.00 | 9000 | 30 | 64 | 136 | 0.000 | 0.000 | 0.00 |",
		"| l7 | 3.00 | 4.00 | 1500 | 400 | 700 | 900 | 0.300 | 0.300 | 2.00 |",
		"| l7 − direct | | | | +370 | +636 | +764 | | | |",
		"| l7 − l4 | | | | +335 | +565 | +635 | | | |",
		"| l7 − l4 | +335/+565/+635 | 5.00× | +335/+565/+635 | 5.00× | +335/+565/+635 | 5.00× |",
		"| cross-node | l7 | waypoint (node-b) | 20.0 | 25.0 | 40.0 |",
		"| " + figL7 + " | ≤ 1 ms | +764 µs | met |",
		"| l4/direct | 0.20× | 0.19× | 0.31× | | | 1.95× | | | |",
		"| l4 − direct | | | | +35 | +71 | +129 | | | |",
		"| peer-hbone − direct | | | | +70 | +136 | +164 | | | |",
		"| l4/peer-hbone | 1.98× | 1.92× | 2.75× | | | 0.88× | 0.50× | | 0.71× |",
		"| l4/plain-tls | 1.24× | 1.28× | 1.38× | | | 1.02× | 1.00× | | 1.06× |",
		"| mode | 1 conn p50/p90/p99 µs | cores | 4 conns p50/p90/p99 µs | cores | 16 conns p50/p90/p99 µs | cores |",
		"| l4 | 60/130/260 | 0.030 | 65/135/265 | 0.060 | 75/145/275 (940/s) | 0.120 |",
		"| l4 − direct | +35/+71/+129 | | +35/+71/+129 | | +35/+71/+129 | |",
		"| l4/peer-hbone | p99 0.88× | 0.50× | p99 0.88× | 0.50× | p99 0.89× | 0.50× |",
		"| l4 − direct | | | | +30 | +50 | +300 | | | |", // same-node, against same-node direct
		"| same-node | l4 | ztunnel node-a | 9.5 | 13.0 | 30.0 |",
		"| cross-node | peer-hbone | server forwarder | 10.0 | 21.0 | 41.0 |",
		"| " + figRSS + " | ≤ 20 MB (19.1 MiB) | 16.0 MiB | met |",
		"| " + figP99 + " | ≤ 150 µs | +129 µs | met |",
		"| " + figCores + " | ≤ 0.06 cores | 0.060 cores (0.060 CPU-s per 1000 req) | missed |",
		"| " + figVsPeer + " | ≥ 2× | 1.98× (9.90 vs 5.00 Gbit/s) | missed |",
		"| " + figVsTLS + " | ≤ 1.0× | 1.06× (0.85 vs 0.80 CPU-s/GB) | missed |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every row of a table has as many cells as its header.
	var header string
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !strings.HasPrefix(line, "|"):
			header = ""
		case header == "":
			header = line
		case strings.Count(line, "|") != strings.Count(header, "|"):
			t.Errorf("row %q has a different column count than %q", line, header)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	r := sampleResults()
	dir := filepath.Join(t.TempDir(), "out")
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.find(CrossNode, L4).Median.At(4).P99Micros != 265 || len(back.Targets) != len(r.Targets) ||
		len(back.find(CrossNode, PeerHBONE).Proxies) != 2 || len(back.find(CrossNode, L7).Proxies) != 3 || back.find(SameNode, L4).Median.At(16) == nil {
		t.Errorf("JSON round trip lost data: %s", js)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "results.md")); string(b) != r.Markdown() {
		t.Error("results.md differs from Markdown()")
	}
}
