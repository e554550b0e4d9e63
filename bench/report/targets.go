package report

import "fmt"

// Target is one row of performance.md's target table as this run can judge it.
type Target struct {
	Figure string `json:"figure"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`  // "" when not measured
	Status string `json:"status"` // "met", "missed" or "not measured: <why>"
}

// Target thresholds from performance.md ("Targets").
const (
	targetVsPeerHBONE    = 2.0 // l4 single-stream throughput over peer-hbone's, at least
	targetVsPlainTLS     = 1.0 // l4 proxies' CPU-s per GB over plain-tls's, at most
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

// evaluateTargets judges the targets this run's figures decide and lists the others as
// not measured, naming the mode or run they need.
func evaluateTargets(r *Results) []Target {
	notYet := func(figure, goal, why string) Target {
		return Target{Figure: figure, Goal: goal, Status: "not measured: " + why}
	}
	var ts []Target

	const vsPeer, vsPeerGoal = "l4 1-stream throughput vs peer-hbone (same run)", "≥ 2×"
	if c := r.comparison(L4, PeerHBONE); c == nil {
		ts = append(ts, notYet(vsPeer, vsPeerGoal, missing(r, L4, PeerHBONE)))
	} else {
		l4, peer := r.find(L4).Median, r.find(PeerHBONE).Median
		ts = append(ts, Target{vsPeer, vsPeerGoal, fmt.Sprintf("%.2f× (%.2f vs %.2f Gbit/s)", c.Gbps1Ratio, l4.Gbps1, peer.Gbps1),
			status(c.Gbps1Ratio >= targetVsPeerHBONE)})
	}

	const vsTLS, vsTLSGoal = "l4 proxies' CPU-s per GB vs plain-tls (same run)", "≤ 1.0×"
	if c := r.comparison(L4, PlainTLS); c == nil {
		ts = append(ts, notYet(vsTLS, vsTLSGoal, missing(r, L4, PlainTLS)))
	} else {
		l4, tls := r.find(L4).Median, r.find(PlainTLS).Median
		ts = append(ts, Target{vsTLS, vsTLSGoal, fmt.Sprintf("%.2f× (%.2f vs %.2f CPU-s/GB)", c.CPUPerGBRatio, l4.ProxyCPUPerGB, tls.ProxyCPUPerGB),
			status(c.CPUPerGBRatio > 0 && c.CPUPerGBRatio <= targetVsPlainTLS)})
	}

	const p99 = "added p99 latency, l4, 1000 req/s, 4 conns"
	const cores = "both ztunnels' CPU at 1000 req/s (l4)"
	if c := r.comparison(L4, Baseline); c == nil {
		ts = append(ts, notYet(p99, "≤ 150 µs", missing(r, L4, Baseline)), notYet(cores, "≤ 0.06 cores", missing(r, L4)))
	} else {
		m := r.find(L4).Median
		ts = append(ts,
			Target{p99, "≤ 150 µs", fmt.Sprintf("%+.0f µs", c.AddedP99), status(c.AddedP99 <= targetAddedP99Micros)},
			Target{cores, "≤ 0.06 cores", fmt.Sprintf("%.3f cores", m.ProxyCores), status(m.ProxyCores <= targetCores)},
		)
	}

	const rss = "ztunnel RSS at 1000 req/s (l4, larger of the two)"
	if l4 := r.find(L4); l4 == nil || len(l4.Proxies) == 0 || l4.Proxies[0].LoadRSSMiB == 0 {
		ts = append(ts, notYet(rss, "≤ 20 MB", "no l4 latency run"))
	} else {
		var v float64
		for _, p := range l4.Proxies {
			v = max(v, p.LoadRSSMiB)
		}
		ts = append(ts, Target{rss, "≤ 20 MB (19.1 MiB)", fmt.Sprintf("%.1f MiB", v), status(v <= targetRSSMiB)})
	}
	return append(ts,
		notYet("added p99 latency, l7 (waypoint)", "≤ 1 ms", "needs the l7 mode"),
		notYet("WDS event-to-push p99, 10k pods, 100 clients", "≤ 100 ms, 0 resent", "needs the control-plane benchmark"),
	)
}

// missing names the modes without a result among names: "no peer-hbone result", or
// "needs the peer-hbone mode" when the run did not include it at all.
func missing(r *Results, names ...string) string {
	for _, n := range names {
		m := r.find(n)
		switch {
		case m == nil:
			return "needs the " + n + " mode"
		case m.Median == nil:
			return "no " + n + " result"
		}
	}
	return "no result"
}
