package report

import (
	"slices"

	"github.com/ambitmesh/ambit/bench/measure"
)

// Comparison is a mode against another (Against) of the same topology, from the
// medians: ratios (mode/against) of the rates and, between two modes with proxies on
// the path, of the proxies' CPU per GB; and per latency point the latency the mode
// adds (mode − against, µs), the p99 ratio and (again between proxied modes) the
// ratio of the proxies' CPU.
type Comparison struct {
	Topology      string              `json:"topology"`
	Mode          string              `json:"mode"`
	Against       string              `json:"against"`
	Gbps1Ratio    float64             `json:"iperf3_1_stream_ratio"`
	Gbps4Ratio    float64             `json:"iperf3_4_streams_ratio"`
	ConnsRatio    float64             `json:"connections_per_second_ratio"`
	CPUPerGBRatio float64             `json:"proxies_cpu_seconds_per_gb_ratio,omitempty"` // 0 against direct
	Latency       []LatencyComparison `json:"latency"`
}

// LatencyComparison is one latency point (connection count) of a Comparison.
type LatencyComparison struct {
	Conns      int     `json:"connections"`
	AddedP50   float64 `json:"added_p50_us"`
	AddedP90   float64 `json:"added_p90_us"`
	AddedP99   float64 `json:"added_p99_us"`
	P99Ratio   float64 `json:"p99_ratio"`
	CoresRatio float64 `json:"proxies_cores_ratio,omitempty"` // 0 against direct
}

// At returns the comparison of the latency point over conns connections, or nil.
func (c *Comparison) At(conns int) *LatencyComparison {
	if c == nil {
		return nil
	}
	for i := range c.Latency {
		if c.Latency[i].Conns == conns {
			return &c.Latency[i]
		}
	}
	return nil
}

// peerComparisons are the pairs compared besides every mode against Baseline: the
// targets' l4 against the two baselines of encrypted forwarding, and l7 against l4
// (what the waypoint adds).
var peerComparisons = [][2]string{{L4, PeerHBONE}, {L4, PlainTLS}, {L7, L4}}

// added reports whether the comparison is read as latency added (mode − against):
// against direct, and l7 against l4 (the waypoint's share); the others as ratios.
func (c *Comparison) added() bool { return c.Against == Baseline || (c.Mode == L7 && c.Against == L4) }

// scalars lists every per-round figure outside the latency points once, so medians
// cannot miss one.
var scalars = []func(*Figures) *float64{
	func(f *Figures) *float64 { return &f.Gbps1 },
	func(f *Figures) *float64 { return &f.Gbps4 },
	func(f *Figures) *float64 { return &f.ConnsPerSec },
	func(f *Figures) *float64 { return &f.ProxyCPUPerGB },
}

// latencyFields lists every figure of a latency point once (Conns excepted).
var latencyFields = []func(*Latency) *float64{
	func(l *Latency) *float64 { return &l.QPS },
	func(l *Latency) *float64 { return &l.P50Micros },
	func(l *Latency) *float64 { return &l.P90Micros },
	func(l *Latency) *float64 { return &l.P99Micros },
	func(l *Latency) *float64 { return &l.ProxyCores },
	func(l *Latency) *float64 { return &l.ProxyCPUPer1k },
}

// Summarize fills each mode's Median, the comparisons inside each topology (every
// measured mode against Baseline, then l4 against the two baselines and l7 against l4)
// and the targets.
func (r *Results) Summarize() {
	for _, m := range r.Modes {
		m.Median = median(m.Rounds)
	}
	r.Comparisons = nil
	for _, topo := range r.topologies() {
		for _, m := range r.Modes {
			if m.Topology == topo && m.Name != Baseline {
				r.compare(topo, m.Name, Baseline)
			}
		}
		for _, p := range peerComparisons {
			r.compare(topo, p[0], p[1])
		}
	}
	r.Targets = evaluateTargets(r)
}

// median returns the per-figure medians of rounds (nil for none). Latency points are
// matched by connection count, in the order they first appear.
func median(rounds []Figures) *Figures {
	if len(rounds) == 0 {
		return nil
	}
	med := &Figures{}
	for _, get := range scalars {
		xs := make([]float64, len(rounds))
		for i := range rounds {
			xs[i] = *get(&rounds[i])
		}
		*get(med) = measure.Median(xs)
	}
	var conns []int
	for _, f := range rounds {
		for _, l := range f.Latency {
			if !slices.Contains(conns, l.Conns) {
				conns = append(conns, l.Conns)
			}
		}
	}
	for _, c := range conns {
		point := Latency{Conns: c}
		for _, get := range latencyFields {
			var xs []float64
			for i := range rounds {
				if l := rounds[i].At(c); l != nil {
					xs = append(xs, *get(l))
				}
			}
			*get(&point) = measure.Median(xs)
		}
		med.Latency = append(med.Latency, point)
	}
	return med
}

// compare appends mode against other in the topology when both have medians.
func (r *Results) compare(topology, mode, other string) {
	x, y := r.find(topology, mode), r.find(topology, other)
	if x == nil || y == nil || x.Median == nil || y.Median == nil {
		return
	}
	a, b := x.Median, y.Median
	c := Comparison{
		Topology: topology, Mode: mode, Against: other,
		Gbps1Ratio: ratio(a.Gbps1, b.Gbps1), Gbps4Ratio: ratio(a.Gbps4, b.Gbps4), ConnsRatio: ratio(a.ConnsPerSec, b.ConnsPerSec),
	}
	if other != Baseline {
		c.CPUPerGBRatio = ratio(a.ProxyCPUPerGB, b.ProxyCPUPerGB)
	}
	for _, la := range a.Latency {
		lb := b.At(la.Conns)
		if lb == nil {
			continue
		}
		lc := LatencyComparison{
			Conns: la.Conns, AddedP50: la.P50Micros - lb.P50Micros, AddedP90: la.P90Micros - lb.P90Micros,
			AddedP99: la.P99Micros - lb.P99Micros, P99Ratio: ratio(la.P99Micros, lb.P99Micros),
		}
		if other != Baseline {
			lc.CoresRatio = ratio(la.ProxyCores, lb.ProxyCores)
		}
		c.Latency = append(c.Latency, lc)
	}
	r.Comparisons = append(r.Comparisons, c)
}

// comparison returns the comparison of mode against other in the topology, or nil.
func (r *Results) comparison(topology, mode, other string) *Comparison {
	for i := range r.Comparisons {
		if c := &r.Comparisons[i]; c.Topology == topology && c.Mode == mode && c.Against == other {
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
