package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sampleResults() *Results {
	r := &Results{RunID: "ambit-bench-x", Settings: Settings{Rounds: 3}}
	d := r.Mode(Baseline)
	d.Rounds = []Figures{
		{Gbps1: 50, Gbps4: 60, ConnsPerSec: 9000, P50Micros: 30, P90Micros: 60, P99Micros: 130},
		{Gbps1: 54, Gbps4: 58, ConnsPerSec: 9500, P50Micros: 32, P90Micros: 64, P99Micros: 136},
		{Gbps1: 40, Gbps4: 62, ConnsPerSec: 8000, P50Micros: 28, P90Micros: 70, P99Micros: 140},
	}
	l4 := r.Mode(L4)
	l4.Rounds = []Figures{
		{Gbps1: 10.8, Gbps4: 12, ConnsPerSec: 3000, P50Micros: 60, P90Micros: 130, P99Micros: 250, ProxyCores: 0.05, ProxyCPUPerGB: 0.8},
		{Gbps1: 9, Gbps4: 11, ConnsPerSec: 2500, P50Micros: 70, P90Micros: 140, P99Micros: 280, ProxyCores: 0.0701, ProxyCPUPerGB: 0.9},
	}
	l4.Proxies = []Proxy{{"ztunnel node-a", 9.5, 12, 30}, {"ztunnel node-b", 9.25, 16, 31}}
	peer := r.Mode(PeerHBONE)
	peer.Rounds = []Figures{{Gbps1: 5, Gbps4: 6, ConnsPerSec: 1000, P50Micros: 100, P90Micros: 200, P99Micros: 300, ProxyCores: 0.12, ProxyCPUPerGB: 1.2}}
	peer.Proxies = []Proxy{{"client forwarder", 10, 18, 40}, {"server forwarder", 10, 21, 41}}
	tls := r.Mode(PlainTLS)
	tls.Rounds = []Figures{{Gbps1: 8, Gbps4: 9, ConnsPerSec: 2000, P50Micros: 70, P90Micros: 150, P99Micros: 260, ProxyCores: 0.06, ProxyCPUPerGB: 0.8}}
	r.Summarize()
	return r
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestSummarize(t *testing.T) {
	r := sampleResults()
	d, l4 := r.Mode(Baseline).Median, r.Mode(L4).Median
	if d.Gbps1 != 50 || d.P99Micros != 136 || d.ConnsPerSec != 9000 {
		t.Fatalf("direct medians %+v", d)
	}
	if !near(l4.Gbps1, 9.9) || l4.P99Micros != 265 || !near(l4.ProxyCores, 0.06005) || !near(l4.ProxyCPUPerGB, 0.85) {
		t.Fatalf("l4 medians (even count: mean of the middle two) %+v", l4)
	}
	var got []string
	for _, c := range r.Comparisons {
		got = append(got, c.Mode+"/"+c.Against)
	}
	if want := "l4/direct peer-hbone/direct plain-tls/direct l4/peer-hbone l4/plain-tls"; strings.Join(got, " ") != want {
		t.Fatalf("comparisons %v, want %s", got, want)
	}
	c := r.comparison(L4, Baseline)
	if !near(c.Gbps1Ratio, 9.9/50) || c.AddedP99 != 265-136 || c.AddedP50 != 65-30 || c.CPUPerGBRatio != 0 || c.CoresRatio != 0 {
		t.Fatalf("l4/direct %+v", c)
	}
	if c := r.comparison(L4, PeerHBONE); !near(c.Gbps1Ratio, 9.9/5) || !near(c.CPUPerGBRatio, 0.85/1.2) || !near(c.CoresRatio, 0.06005/0.12) {
		t.Fatalf("l4/peer-hbone %+v", c)
	}
	if c := r.comparison(L4, PlainTLS); !near(c.CPUPerGBRatio, 0.85/0.8) {
		t.Fatalf("l4/plain-tls %+v", c)
	}
	statuses := map[string]string{}
	for _, tg := range r.Targets {
		statuses[tg.Figure] = tg.Status
	}
	for fig, want := range map[string]string{
		"l4 1-stream throughput vs peer-hbone (same run)":   "missed", // 1.98×
		"l4 proxies' CPU-s per GB vs plain-tls (same run)":  "missed", // 1.06×
		"added p99 latency, l4, 1000 req/s, 4 conns":        "met",
		"both ztunnels' CPU at 1000 req/s (l4)":             "missed", // 0.06005 > 0.06
		"ztunnel RSS at 1000 req/s (l4, larger of the two)": "met",
		"added p99 latency, l7 (waypoint)":                  "not measured: needs the l7 mode",
	} {
		if statuses[fig] != want {
			t.Errorf("target %q: %q, want %q", fig, statuses[fig], want)
		}
	}
	if r.Failed() {
		t.Error("Failed with no mode error")
	}
}

func TestRatioTargets(t *testing.T) {
	tests := []struct {
		name              string
		peerGbps, tlsCPU  float64
		dropPeer          bool
		tlsFailed         bool
		wantPeer, wantTLS string
	}{
		{name: "both met", peerGbps: 4.9, tlsCPU: 0.86, wantPeer: "met", wantTLS: "met"},
		{name: "both missed", peerGbps: 5, tlsCPU: 0.84, wantPeer: "missed", wantTLS: "missed"},
		{name: "peer mode not run", dropPeer: true, tlsCPU: 1, wantPeer: "not measured: needs the peer-hbone mode", wantTLS: "met"},
		{name: "plain-tls failed before a round", peerGbps: 1, tlsFailed: true, wantPeer: "met", wantTLS: "not measured: no plain-tls result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleResults()
			if tc.dropPeer {
				r.Modes = slices.DeleteFunc(r.Modes, func(m *Mode) bool { return m.Name == PeerHBONE })
			} else {
				r.find(PeerHBONE).Rounds[0].Gbps1 = tc.peerGbps
			}
			if tc.tlsFailed {
				r.find(PlainTLS).Rounds = nil
				r.find(PlainTLS).Error = "forwarder exited"
			} else {
				r.find(PlainTLS).Rounds[0].ProxyCPUPerGB = tc.tlsCPU
			}
			r.Summarize()
			got := map[string]string{}
			for _, tg := range r.Targets {
				got[tg.Figure] = tg.Status
			}
			if s := got["l4 1-stream throughput vs peer-hbone (same run)"]; s != tc.wantPeer {
				t.Errorf("peer target %q, want %q", s, tc.wantPeer)
			}
			if s := got["l4 proxies' CPU-s per GB vs plain-tls (same run)"]; s != tc.wantTLS {
				t.Errorf("plain-tls target %q, want %q", s, tc.wantTLS)
			}
		})
	}
}

func TestTargetsMissedAndFailedMode(t *testing.T) {
	r := sampleResults()
	r.Mode(L4).Rounds[0].P99Micros = 900
	r.Mode(L4).Rounds[1].P99Micros = 900
	r.Mode(L4).Error = "iperf3: connection reset"
	r.Summarize()
	for _, tg := range r.Targets {
		if strings.HasPrefix(tg.Figure, "added p99 latency, l4") && tg.Status != "missed" {
			t.Errorf("p99 target %+v, want missed", tg)
		}
	}
	if !r.Failed() {
		t.Error("Failed is false with a mode error")
	}
	if md := r.Markdown(); !strings.Contains(md, "**l4 FAILED** after 2 complete rounds: iperf3: connection reset") {
		t.Errorf("markdown does not report the failure:\n%s", md)
	}
}

func TestNoBaseline(t *testing.T) {
	r := &Results{}
	r.Mode(L4).Rounds = []Figures{{Gbps1: 1}}
	r.Mode(Baseline).Error = "setup failed"
	r.Summarize()
	if len(r.Comparisons) != 0 {
		t.Fatalf("compared with a baseline that has no rounds: %+v", r.Comparisons)
	}
	if md := r.Markdown(); !strings.Contains(md, "| direct | — |") {
		t.Errorf("missing placeholder row:\n%s", md)
	}
}

func TestMarkdownAndFiles(t *testing.T) {
	r := sampleResults()
	md := r.Markdown()
	for _, want := range []string{
		"| direct | 50.00 | 60.00 | 9000 | 30 | 64 | 136 | 0.000 | 0.00 |",
		"| l4/direct | 0.20× | 0.19× | 0.31× | | | 1.95× | | |",
		"| l4 − direct | | | | +35 | +71 | +129 | | |",
		"| peer-hbone − direct | | | | +70 | +136 | +164 | | |",
		"| l4/peer-hbone | 1.98× | 1.92× | 2.75× | | | 0.88× | 0.50× | 0.71× |",
		"| l4/plain-tls | 1.24× | 1.28× | 1.38× | | | 1.02× | 1.00× | 1.06× |",
		"| l4 | ztunnel node-b | 9.2 | 16.0 | 31.0 |",
		"| peer-hbone | server forwarder | 10.0 | 21.0 | 41.0 |",
		"| ztunnel RSS at 1000 req/s (l4, larger of the two) | ≤ 20 MB (19.1 MiB) | 16.0 MiB | met |",
		"| added p99 latency, l4, 1000 req/s, 4 conns | ≤ 150 µs | +129 µs | met |",
		"| l4 1-stream throughput vs peer-hbone (same run) | ≥ 2× | 1.98× (9.90 vs 5.00 Gbit/s) | missed |",
		"| l4 proxies' CPU-s per GB vs plain-tls (same run) | ≤ 1.0× | 1.06× (0.85 vs 0.80 CPU-s/GB) | missed |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	lines := strings.Split(md, "\n")
	header := lines[4]
	for _, line := range lines[4:] {
		if line == "" {
			break // the end of the main table
		}
		for _, m := range r.Modes {
			if strings.HasPrefix(line, "| "+m.Name+" |") || strings.HasPrefix(line, "| "+m.Name+"/") || strings.HasPrefix(line, "| "+m.Name+" −") {
				if strings.Count(line, "|") != strings.Count(header, "|") {
					t.Errorf("row %q has a different column count than %q", line, header)
				}
			}
		}
	}
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
	if back.Mode(L4).Median.P99Micros != 265 || len(back.Targets) != len(r.Targets) || len(back.Mode(PeerHBONE).Proxies) != 2 {
		t.Errorf("JSON round trip lost data: %s", js)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "results.md")); string(b) != md {
		t.Error("results.md differs from Markdown()")
	}
}
