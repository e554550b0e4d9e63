package report

import (
	"fmt"
	"maps"
	"slices"
)

// Target is one row of performance.md's target table as this run can judge it.
type Target struct {
	Figure string `json:"figure"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`  // "" when not measured
	Status string `json:"status"` // "met", "missed" or "not measured: <why>"
}

// Target thresholds from performance.md ("Targets").
const (
	targetAddedP99Micros = 150
	targetCores          = 0.06
	targetRSSMiB         = 20e6 / (1 << 20) // 20 MB
)

func status(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

// evaluateTargets judges the targets that the l4 figures decide and lists the others as
// not measured, naming the mode or run they need.
func evaluateTargets(r *Results) []Target {
	var l4 *Comparison
	for i := range r.Comparisons {
		if r.Comparisons[i].Mode == "l4" {
			l4 = &r.Comparisons[i]
		}
	}
	notYet := func(figure, goal, why string) Target {
		return Target{Figure: figure, Goal: goal, Status: "not measured: " + why}
	}
	ts := []Target{
		notYet("l4 1-stream throughput vs peer-hbone", "≥ 2×", "needs the peer-hbone mode"),
		notYet("l4 ztunnels' CPU-s per GB vs plain-tls", "≤ 1.0×", "needs the plain-tls mode"),
	}
	const p99 = "added p99 latency, l4, 1000 req/s, 4 conns"
	const cores = "both ztunnels' CPU at 1000 req/s (l4)"
	const rss = "ztunnel RSS at 1000 req/s (l4, larger of the two)"
	if l4 == nil {
		ts = append(ts, notYet(p99, "≤ 150 µs", "no l4 result"), notYet(cores, "≤ 0.06 cores", "no l4 result"))
	} else {
		m := r.Mode("l4").Median
		ts = append(ts,
			Target{p99, "≤ 150 µs", fmt.Sprintf("%+.0f µs", l4.AddedP99), status(l4.AddedP99 <= targetAddedP99Micros)},
			Target{cores, "≤ 0.06 cores", fmt.Sprintf("%.3f cores", m.ZtunnelCores), status(m.ZtunnelCores <= targetCores)},
		)
	}
	if load := r.Footprint.LoadRSSMiB; len(load) == 0 {
		ts = append(ts, notYet(rss, "≤ 20 MB", "no l4 latency run"))
	} else {
		v := slices.Max(slices.Collect(maps.Values(load)))
		ts = append(ts, Target{rss, "≤ 20 MB (19.1 MiB)", fmt.Sprintf("%.1f MiB", v), status(v <= targetRSSMiB)})
	}
	return append(ts,
		notYet("added p99 latency, l7 (waypoint)", "≤ 1 ms", "needs the l7 mode"),
		notYet("WDS event-to-push p99, 10k pods, 100 clients", "≤ 100 ms, 0 resent", "needs the control-plane benchmark"),
	)
}
