// Package report holds the benchmark's results (per topology and mode, per round),
// derives the medians, the comparisons with the `direct` baseline of the same topology
// and the status of the targets of /work/shared/spec/performance.md, and renders them
// as Markdown and JSON.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Mode names, as performance.md's "Modes".
const (
	Baseline  = "direct"     // pods not enrolled, plain TCP: every mode is compared with it
	L4        = "l4"         // both pods enrolled: ztunnels over HBONE
	L7        = "l7"         // as l4 plus a waypoint for the server's service
	PeerHBONE = "peer-hbone" // Istio's Go HBONE client and server in place of the ztunnels
	PlainTLS  = "plain-tls"  // a minimal crypto/tls forwarder, one TLS connection per flow
)

// Topologies, as performance.md's "Topology". Every comparison stays inside one.
const (
	CrossNode = "cross-node" // client pod on node-a, server pod on node-b: the targets read it
	SameNode  = "same-node"  // client and server pods both on node-a
)

// HeadlineConns is the connection count of the latency point the main table and the
// targets read (performance.md: added p99 and ztunnel CPU at 1000 req/s over 4 conns).
const HeadlineConns = 4

// Latency is one fixed-rate latency point (fortio, one connection count) of one mode
// and round, or the medians over the rounds. The proxies are those of Figures.
type Latency struct {
	Conns         int     `json:"connections"`
	QPS           float64 `json:"achieved_qps"`
	P50Micros     float64 `json:"p50_us"`
	P90Micros     float64 `json:"p90_us"`
	P99Micros     float64 `json:"p99_us"`
	ProxyCores    float64 `json:"proxies_cores"`                         // both proxies together, CPU s per s
	ProxyCPUPer1k float64 `json:"proxies_cpu_seconds_per_1000_requests"` // both proxies' CPU s per 1000 calls
}

// Figures are one mode's numbers from one round, or their medians over the rounds. The
// proxies are the processes that carry the mode's bytes (l4: the ztunnels on the path;
// peer-hbone and plain-tls: the client and server forwarders); for direct they are
// both ztunnels, which are off the path, so their figures are the idle background.
type Figures struct {
	Gbps1         float64   `json:"iperf3_1_stream_gbps"`                // iperf3 single stream, Gbit/s
	Gbps4         float64   `json:"iperf3_4_streams_gbps"`               // iperf3 -P 4, Gbit/s
	ConnsPerSec   float64   `json:"connections_per_second"`              // new TCP connections/s, fortio -keepalive=false
	ProxyCPUPerGB float64   `json:"proxies_cpu_seconds_per_gb_1_stream"` // proxies' CPU s per 10^9 bytes received
	Latency       []Latency `json:"latency"`                             // one point per connection count, in --latency-conns order
}

// At returns the latency point measured over conns connections, or nil.
func (f *Figures) At(conns int) *Latency {
	if f == nil {
		return nil
	}
	for i := range f.Latency {
		if f.Latency[i].Conns == conns {
			return &f.Latency[i]
		}
	}
	return nil
}

// Proxy is the resident memory of one process on a mode's path, MiB. Go keeps freed
// heap for minutes, so memory at load is read in the first round's latency phase,
// before any bulk transfer, and the peak over the whole run is reported apart.
type Proxy struct {
	Name       string  `json:"name"`         // e.g. "ztunnel node-a", "client forwarder (node-a)"
	IdleRSSMiB float64 `json:"idle_rss_mib"` // pods deployed, before any traffic
	LoadRSSMiB float64 `json:"load_rss_mib"` // largest VmRSS sampled during the mode's first-round latency runs
	PeakRSSMiB float64 `json:"peak_rss_mib"` // VmHWM at the end of the run
}

// Mode is one mode's results in one topology. A mode that failed keeps the rounds it
// completed and the first error.
type Mode struct {
	Name     string    `json:"name"`
	Topology string    `json:"topology"`
	Error    string    `json:"error,omitempty"`
	Rounds   []Figures `json:"rounds"`
	Median   *Figures  `json:"median,omitempty"`  // set by Results.Summarize; nil without rounds
	Proxies  []Proxy   `json:"proxies,omitempty"` // memory of the processes on the path; none for direct
}

// Settings record how the run measured, so a reader can judge the numbers.
type Settings struct {
	Rounds          int      `json:"rounds"`
	Topologies      []string `json:"topologies"`
	IperfSeconds    int      `json:"iperf3_seconds"`
	LatencyDuration string   `json:"latency_duration_per_point"`
	LatencyQPS      int      `json:"latency_qps"`
	LatencyConns    []int    `json:"latency_connections"`
	PayloadBytes    int      `json:"payload_bytes"`
	ConnDuration    string   `json:"connection_rate_duration"`
	ConnConns       int      `json:"connection_rate_connections"`
	CPUs            int      `json:"cpus"`
	Kernel          string   `json:"kernel"`
	LoadAvgAtStart  string   `json:"loadavg_at_start"`
}

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

// Mode returns the named mode of the topology, adding it (in call order) when new.
func (r *Results) Mode(topology, name string) *Mode {
	if m := r.find(topology, name); m != nil {
		return m
	}
	m := &Mode{Name: name, Topology: topology}
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

// find returns the named mode of the topology or nil, without adding it.
func (r *Results) find(topology, name string) *Mode {
	for _, m := range r.Modes {
		if m.Name == name && m.Topology == topology {
			return m
		}
	}
	return nil
}

// topologies lists the topologies of the modes, in order of first appearance.
func (r *Results) topologies() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range r.Modes {
		if !seen[m.Topology] {
			seen[m.Topology] = true
			out = append(out, m.Topology)
		}
	}
	return out
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
