// Package report holds the benchmark's results (per mode, per round), derives the
// medians, the comparison with the `direct` baseline and the status of the targets of
// /work/shared/spec/performance.md, and renders them as Markdown and JSON.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
)

// Baseline is the mode every other mode is compared with: pods not enrolled, plain TCP.
const Baseline = "direct"

// Figures are one mode's numbers from one round, or their medians over the rounds.
type Figures struct {
	Gbps1           float64 `json:"iperf3_1_stream_gbps"`                 // iperf3 single stream, Gbit/s
	Gbps4           float64 `json:"iperf3_4_streams_gbps"`                // iperf3 -P 4, Gbit/s
	ConnsPerSec     float64 `json:"connections_per_second"`               // new TCP connections/s, fortio -keepalive=false
	P50Micros       float64 `json:"latency_p50_us"`                       // fortio at the fixed rate, µs
	P90Micros       float64 `json:"latency_p90_us"`                       // µs
	P99Micros       float64 `json:"latency_p99_us"`                       // µs
	ZtunnelCores    float64 `json:"ztunnels_cores_during_latency"`        // both ztunnels together, CPU s per s
	ZtunnelCPUPerGB float64 `json:"ztunnels_cpu_seconds_per_gb_1_stream"` // both ztunnels' CPU s per 10^9 bytes received
	ZtunnelRSSMiB   float64 `json:"ztunnel_max_rss_mib_during_latency"`   // the larger ztunnel's peak sampled VmRSS
}

// fields lists every figure once, so medians and tables cannot miss one.
var fields = []struct {
	title string
	get   func(*Figures) *float64
	prec  int
}{
	{"iperf3 1 stream Gbit/s", func(f *Figures) *float64 { return &f.Gbps1 }, 2},
	{"iperf3 4 streams Gbit/s", func(f *Figures) *float64 { return &f.Gbps4 }, 2},
	{"new conns/s", func(f *Figures) *float64 { return &f.ConnsPerSec }, 0},
	{"p50 µs", func(f *Figures) *float64 { return &f.P50Micros }, 0},
	{"p90 µs", func(f *Figures) *float64 { return &f.P90Micros }, 0},
	{"p99 µs", func(f *Figures) *float64 { return &f.P99Micros }, 0},
	{"ztunnels' CPU cores at load (both)", func(f *Figures) *float64 { return &f.ZtunnelCores }, 3},
	{"ztunnels' CPU-s per GB (1 stream)", func(f *Figures) *float64 { return &f.ZtunnelCPUPerGB }, 2},
}

// Mode is one mode's results. A mode that failed keeps the rounds it completed and
// the first error.
type Mode struct {
	Name   string    `json:"name"`
	Error  string    `json:"error,omitempty"`
	Rounds []Figures `json:"rounds"`
	Median *Figures  `json:"median,omitempty"` // set by Results.Summarize; nil without rounds
}

// Settings record how the run measured, so a reader can judge the numbers.
type Settings struct {
	Rounds          int    `json:"rounds"`
	IperfSeconds    int    `json:"iperf3_seconds"`
	LatencyDuration string `json:"latency_duration"`
	LatencyQPS      int    `json:"latency_qps"`
	LatencyConns    int    `json:"latency_connections"`
	PayloadBytes    int    `json:"payload_bytes"`
	ConnDuration    string `json:"connection_rate_duration"`
	ConnConns       int    `json:"connection_rate_connections"`
	CPUs            int    `json:"cpus"`
	Kernel          string `json:"kernel"`
	LoadAvgAtStart  string `json:"loadavg_at_start"`
}

// Comparison is a mode against Baseline, from the medians: ratios (mode/direct) of the
// rates and the latency the mode adds (mode − direct, µs).
type Comparison struct {
	Mode        string  `json:"mode"`
	Gbps1Ratio  float64 `json:"iperf3_1_stream_ratio"`
	Gbps4Ratio  float64 `json:"iperf3_4_streams_ratio"`
	ConnsRatio  float64 `json:"connections_per_second_ratio"`
	AddedP50    float64 `json:"added_p50_us"`
	AddedP90    float64 `json:"added_p90_us"`
	AddedP99    float64 `json:"added_p99_us"`
	P99Ratio    float64 `json:"p99_ratio"`
	CPUPerGBAbs float64 `json:"ztunnels_cpu_seconds_per_gb"`
}

// Footprint is the ztunnels' resident memory, MiB per node name. Go keeps freed heap
// for minutes, so memory is read at load before any bulk transfer, and the peak over
// the whole run (bulk transfers included) is reported apart.
type Footprint struct {
	IdleRSSMiB map[string]float64 `json:"idle_rss_mib"` // pods enrolled, before any traffic
	LoadRSSMiB map[string]float64 `json:"load_rss_mib"` // peak sampled VmRSS during the first l4 latency run
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"` // VmHWM at the end of the run
}

// Results is one benchmark run.
type Results struct {
	RunID       string       `json:"run_id"`
	Started     time.Time    `json:"started"`
	Elapsed     string       `json:"elapsed"`
	Settings    Settings     `json:"settings"`
	Footprint   Footprint    `json:"ztunnel_footprint"`
	Modes       []*Mode      `json:"modes"`
	Comparisons []Comparison `json:"comparisons"` // set by Summarize
	Targets     []Target     `json:"targets"`     // set by Summarize
}

// Mode returns the named mode, adding it (in call order) when new.
func (r *Results) Mode(name string) *Mode {
	for _, m := range r.Modes {
		if m.Name == name {
			return m
		}
	}
	m := &Mode{Name: name}
	r.Modes = append(r.Modes, m)
	return m
}

// Failed reports whether any mode recorded an error.
func (r *Results) Failed() bool {
	for _, m := range r.Modes {
		if m.Error != "" {
			return true
		}
	}
	return false
}

// Summarize fills each mode's Median, the comparisons with Baseline and the targets.
func (r *Results) Summarize() {
	for _, m := range r.Modes {
		m.Median = nil
		if len(m.Rounds) == 0 {
			continue
		}
		med := &Figures{}
		for _, f := range fields {
			xs := make([]float64, len(m.Rounds))
			for i := range m.Rounds {
				xs[i] = *f.get(&m.Rounds[i])
			}
			*f.get(med) = measure.Median(xs)
		}
		m.Median = med
	}
	r.Comparisons = nil
	base := r.Mode(Baseline).Median
	for _, m := range r.Modes {
		if m.Name == Baseline || m.Median == nil || base == nil {
			continue
		}
		x := m.Median
		r.Comparisons = append(r.Comparisons, Comparison{
			Mode: m.Name, Gbps1Ratio: ratio(x.Gbps1, base.Gbps1), Gbps4Ratio: ratio(x.Gbps4, base.Gbps4),
			ConnsRatio: ratio(x.ConnsPerSec, base.ConnsPerSec), P99Ratio: ratio(x.P99Micros, base.P99Micros),
			AddedP50: x.P50Micros - base.P50Micros, AddedP90: x.P90Micros - base.P90Micros,
			AddedP99: x.P99Micros - base.P99Micros, CPUPerGBAbs: x.ZtunnelCPUPerGB,
		})
	}
	r.Targets = evaluateTargets(r)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteFiles writes results.json and results.md into dir, creating it.
func (r *Results) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
