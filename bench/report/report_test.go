package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleResults() *Results {
	r := &Results{RunID: "ambit-bench-x", Settings: Settings{Rounds: 3}, Footprint: Footprint{
		IdleRSSMiB: map[string]float64{"node-a": 9.5, "node-b": 9.25},
		LoadRSSMiB: map[string]float64{"node-a": 12, "node-b": 16},
		PeakRSSMiB: map[string]float64{"node-a": 30, "node-b": 31},
	}}
	d := r.Mode("direct")
	d.Rounds = []Figures{
		{Gbps1: 50, Gbps4: 60, ConnsPerSec: 9000, P50Micros: 30, P90Micros: 60, P99Micros: 130},
		{Gbps1: 54, Gbps4: 58, ConnsPerSec: 9500, P50Micros: 32, P90Micros: 64, P99Micros: 136},
		{Gbps1: 40, Gbps4: 62, ConnsPerSec: 8000, P50Micros: 28, P90Micros: 70, P99Micros: 140},
	}
	l4 := r.Mode("l4")
	l4.Rounds = []Figures{
		{Gbps1: 10.8, Gbps4: 12, ConnsPerSec: 3000, P50Micros: 60, P90Micros: 130, P99Micros: 250, ZtunnelCores: 0.05, ZtunnelCPUPerGB: 0.8},
		{Gbps1: 9, Gbps4: 11, ConnsPerSec: 2500, P50Micros: 70, P90Micros: 140, P99Micros: 280, ZtunnelCores: 0.0701, ZtunnelCPUPerGB: 0.9},
	}
	r.Summarize()
	return r
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestSummarize(t *testing.T) {
	r := sampleResults()
	d, l4 := r.Mode("direct").Median, r.Mode("l4").Median
	if d.Gbps1 != 50 || d.P99Micros != 136 || d.ConnsPerSec != 9000 {
		t.Fatalf("direct medians %+v", d)
	}
	if !near(l4.Gbps1, 9.9) || l4.P99Micros != 265 || !near(l4.ZtunnelCores, 0.06005) {
		t.Fatalf("l4 medians (even count: mean of the middle two) %+v", l4)
	}
	if len(r.Comparisons) != 1 {
		t.Fatalf("comparisons %+v", r.Comparisons)
	}
	c := r.Comparisons[0]
	if c.Mode != "l4" || !near(c.Gbps1Ratio, 9.9/50) || c.AddedP99 != 265-136 || c.AddedP50 != 65-30 {
		t.Fatalf("comparison %+v", c)
	}
	got := map[string]string{}
	for _, tg := range r.Targets {
		got[tg.Figure] = tg.Status
	}
	for fig, want := range map[string]string{
		"added p99 latency, l4, 1000 req/s, 4 conns": "met",
		"both ztunnels' CPU at 1000 req/s (l4)":      "missed", // 0.06005 > 0.06

		"ztunnel RSS at 1000 req/s (l4, larger of the two)": "met",
		"l4 1-stream throughput vs peer-hbone":              "not measured: needs the peer-hbone mode",
	} {
		if got[fig] != want {
			t.Errorf("target %q: %q, want %q", fig, got[fig], want)
		}
	}
	if r.Failed() {
		t.Error("Failed with no mode error")
	}
}

func TestTargetsMissedAndFailedMode(t *testing.T) {
	r := sampleResults()
	r.Mode("l4").Rounds[0].P99Micros = 900
	r.Mode("l4").Rounds[1].P99Micros = 900
	r.Mode("l4").Error = "iperf3: connection reset"
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
	r.Mode("l4").Rounds = []Figures{{Gbps1: 1}}
	r.Mode("direct").Error = "setup failed"
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
		"ztunnel RSS idle (pods enrolled, before any traffic): node-a 9.5 MiB; node-b 9.2 MiB;",
		"ztunnel RSS peak over the run (VmHWM, bulk transfers included): node-a 30.0 MiB; node-b 31.0 MiB;",
		"| ztunnel RSS at 1000 req/s (l4, larger of the two) | ≤ 20 MB (19.1 MiB) | 16.0 MiB | met |",
		"| added p99 latency, l4, 1000 req/s, 4 conns | ≤ 150 µs | +129 µs | met |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	header := strings.Split(md, "\n")[4]
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| direct |") || strings.HasPrefix(line, "| l4 |") || strings.HasPrefix(line, "| l4 −") || strings.HasPrefix(line, "| l4/") {
			if strings.Count(line, "|") != strings.Count(header, "|") {
				t.Errorf("row %q has a different column count than %q", line, header)
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
	if back.Mode("l4").Median.P99Micros != 265 || len(back.Targets) != len(r.Targets) {
		t.Errorf("JSON round trip lost data: %s", js)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "results.md")); string(b) != md {
		t.Error("results.md differs from Markdown()")
	}
}
