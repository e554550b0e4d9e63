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

// Mode names, as performance.md's "Modes".
const (
	Baseline  = "direct"     // pods not enrolled, plain TCP: every mode is compared with it
	L4        = "l4"         // both pods enrolled: two ztunnels over HBONE
	PeerHBONE = "peer-hbone" // Istio's Go HBONE client and server in place of the ztunnels
	PlainTLS  = "plain-tls"  // a minimal crypto/tls forwarder, one TLS connection per flow
)

// Figures are one mode's numbers from one round, or their medians over the rounds. The
// proxies are the processes that carry the mode's bytes (l4: both ztunnels; peer-hbone
// and plain-tls: the client and server forwarders); for direct they are the ztunnels,
// which are off the path, so their figures are the idle background.
type Figures struct {
	Gbps1         float64 `json:"iperf3_1_stream_gbps"`                // iperf3 single stream, Gbit/s
	Gbps4         float64 `json:"iperf3_4_streams_gbps"`               // iperf3 -P 4, Gbit/s
	ConnsPerSec   float64 `json:"connections_per_second"`              // new TCP connections/s, fortio -keepalive=false
	P50Micros     float64 `json:"latency_p50_us"`                      // fortio at the fixed rate, µs
	P90Micros     float64 `json:"latency_p90_us"`                      // µs
	P99Micros     float64 `json:"latency_p99_us"`                      // µs
	ProxyCores    float64 `json:"proxies_cores_during_latency"`        // both proxies together, CPU s per s
	ProxyCPUPerGB float64 `json:"proxies_cpu_seconds_per_gb_1_stream"` // both proxies' CPU s per 10^9 bytes received
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
	{"proxies' CPU cores at load (both)", func(f *Figures) *float64 { return &f.ProxyCores }, 3},
	{"proxies' CPU-s per GB (1 stream)", func(f *Figures) *float64 { return &f.ProxyCPUPerGB }, 2},
}

// Proxy is the resident memory of one process on a mode's path, MiB. Go keeps freed
// heap for minutes, so memory at load is read before the mode's first bulk transfer,
// and the peak over the whole run (bulk transfers included) is reported apart.
type Proxy struct {
	Name       string  `json:"name"`         // e.g. "ztunnel node-a", "client forwarder"
	IdleRSSMiB float64 `json:"idle_rss_mib"` // pods deployed, before any traffic
	LoadRSSMiB float64 `json:"load_rss_mib"` // largest VmRSS sampled during the mode's first latency run
	PeakRSSMiB float64 `json:"peak_rss_mib"` // VmHWM at the end of the run
}

// Mode is one mode's results. A mode that failed keeps the rounds it completed and
// the first error.
type Mode struct {
	Name    string    `json:"name"`
	Error   string    `json:"error,omitempty"`
	Rounds  []Figures `json:"rounds"`
	Median  *Figures  `json:"median,omitempty"`  // set by Results.Summarize; nil without rounds
	Proxies []Proxy   `json:"proxies,omitempty"` // memory of the processes on the path; none for direct
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

// Comparison is a mode against another (Against), from the medians: ratios
// (mode/against) of the rates, of p99 and, between two modes with proxies on the
// path, of the proxies' CPU; and the latency the mode adds (mode − against, µs).
type Comparison struct {
	Mode          string  `json:"mode"`
	Against       string  `json:"against"`
	Gbps1Ratio    float64 `json:"iperf3_1_stream_ratio"`
	Gbps4Ratio    float64 `json:"iperf3_4_streams_ratio"`
	ConnsRatio    float64 `json:"connections_per_second_ratio"`
	AddedP50      float64 `json:"added_p50_us"`
	AddedP90      float64 `json:"added_p90_us"`
	AddedP99      float64 `json:"added_p99_us"`
	P99Ratio      float64 `json:"p99_ratio"`
	CoresRatio    float64 `json:"proxies_cores_ratio,omitempty"`              // 0 against direct
	CPUPerGBRatio float64 `json:"proxies_cpu_seconds_per_gb_ratio,omitempty"` // 0 against direct
}

// peerComparisons are the pairs compared besides every mode against Baseline: the
// targets' l4 against the two baselines of encrypted forwarding.
var peerComparisons = [][2]string{{L4, PeerHBONE}, {L4, PlainTLS}}

// Results is one benchmark run.
type Results struct {
	RunID       string       `json:"run_id"`
	Started     time.Time    `json:"started"`
	Elapsed     string       `json:"elapsed"`
	Settings    Settings     `json:"settings"`
	Modes       []*Mode      `json:"modes"`
	Comparisons []Comparison `json:"comparisons"` // set by Summarize
	Targets     []Target     `json:"targets"`     // set by Summarize
}

// Mode returns the named mode, adding it (in call order) when new.
func (r *Results) Mode(name string) *Mode {
	if m := r.find(name); m != nil {
		return m
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
	for _, m := range r.Modes {
		if m.Name != Baseline {
			r.compare(m.Name, Baseline)
		}
	}
	for _, p := range peerComparisons {
		r.compare(p[0], p[1])
	}
	r.Targets = evaluateTargets(r)
}

// compare appends mode against other when both have medians.
func (r *Results) compare(mode, other string) {
	x, y := r.find(mode), r.find(other)
	if x == nil || y == nil || x.Median == nil || y.Median == nil {
		return
	}
	a, b := x.Median, y.Median
	c := Comparison{
		Mode: mode, Against: other, Gbps1Ratio: ratio(a.Gbps1, b.Gbps1), Gbps4Ratio: ratio(a.Gbps4, b.Gbps4),
		ConnsRatio: ratio(a.ConnsPerSec, b.ConnsPerSec), P99Ratio: ratio(a.P99Micros, b.P99Micros),
		AddedP50: a.P50Micros - b.P50Micros, AddedP90: a.P90Micros - b.P90Micros, AddedP99: a.P99Micros - b.P99Micros,
	}
	if other != Baseline {
		c.CoresRatio, c.CPUPerGBRatio = ratio(a.ProxyCores, b.ProxyCores), ratio(a.ProxyCPUPerGB, b.ProxyCPUPerGB)
	}
	r.Comparisons = append(r.Comparisons, c)
}

// find returns the named mode or nil, without adding it.
func (r *Results) find(name string) *Mode {
	for _, m := range r.Modes {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// comparison returns the comparison of mode against other, or nil.
func (r *Results) comparison(mode, other string) *Comparison {
	for i := range r.Comparisons {
		if c := &r.Comparisons[i]; c.Mode == mode && c.Against == other {
			return c
		}
	}
	return nil
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
