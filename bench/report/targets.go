package report

import "fmt"

// Target is one row of performance.md's target table as this run can judge it.
type Target struct {
	Figure string `json:"figure"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`  // "" when not measured
	Status string `json:"status"` // "met", "missed" or "not measured: <why>"
}

// Target thresholds from performance.md ("Targets"). Every target reads the cross-node
// topology, the common case the spec's baselines were measured on.
const (
	targetVsPeerHBONE       = 2.0 // l4 single-stream throughput over peer-hbone's, at least
	targetVsPlainTLS        = 1.0 // l4 proxies' CPU-s per GB over plain-tls's, at most
	targetAddedP99Micros    = 150
	targetL7AddedP99Micros  = 1000
	targetCores             = 0.06
	targetRSSMiB            = 20e6 / (1 << 20) // 20 MB
	targetTopology          = CrossNode
	controlPlaneNotMeasured = "measured by ambit-cpbench, in the control-plane table that make bench prints after this one"
)

// Figures of the target table, as rendered.
const (
	figVsPeer = "l4 1-stream throughput vs peer-hbone (cross-node, same run)"
	figVsTLS  = "l4 proxies' CPU-s per GB vs plain-tls (cross-node, same run)"
	figP99    = "added p99 latency, l4, 1000 req/s, 4 conns (cross-node)"
	figCores  = "both ztunnels' CPU at 1000 req/s, 4 conns (l4, cross-node)"
	figRSS    = "ztunnel RSS at 1000 req/s (l4, cross-node, larger of the two)"
	figL7     = "added p99 latency, l7 (waypoint), 1000 req/s, 4 conns (cross-node)"
	figWDS    = "WDS event-to-push p99, 10k pods, 100 clients"
)

func status(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func notYet(figure, goal, why string) Target {
	return Target{Figure: figure, Goal: goal, Status: "not measured: " + why}
}

// evaluateTargets judges the targets this run's figures decide and lists the others as
// not measured, naming the mode, point or run they need.
func evaluateTargets(r *Results) []Target {
	const topo = targetTopology
	var ts []Target

	if c := r.comparison(topo, L4, PeerHBONE); c == nil {
		ts = append(ts, notYet(figVsPeer, "≥ 2×", r.missing(L4, PeerHBONE)))
	} else {
		l4, peer := r.find(topo, L4).Median, r.find(topo, PeerHBONE).Median
		ts = append(ts, Target{figVsPeer, "≥ 2×", fmt.Sprintf("%.2f× (%.2f vs %.2f Gbit/s)", c.Gbps1Ratio, l4.Gbps1, peer.Gbps1),
			status(c.Gbps1Ratio >= targetVsPeerHBONE)})
	}

	if c := r.comparison(topo, L4, PlainTLS); c == nil {
		ts = append(ts, notYet(figVsTLS, "≤ 1.0×", r.missing(L4, PlainTLS)))
	} else {
		l4, tls := r.find(topo, L4).Median, r.find(topo, PlainTLS).Median
		ts = append(ts, Target{figVsTLS, "≤ 1.0×", fmt.Sprintf("%.2f× (%.2f vs %.2f CPU-s/GB)", c.CPUPerGBRatio, l4.ProxyCPUPerGB, tls.ProxyCPUPerGB),
			status(c.CPUPerGBRatio > 0 && c.CPUPerGBRatio <= targetVsPlainTLS)})
	}

	ts = append(ts, r.addedP99Target(figP99, L4, "≤ 150 µs", targetAddedP99Micros))

	var l *Latency
	if m := r.find(topo, L4); m != nil {
		l = m.Median.At(HeadlineConns)
	}
	if l == nil {
		ts = append(ts, notYet(figCores, "≤ 0.06 cores", r.missingPoint(L4)))
	} else {
		ts = append(ts, Target{figCores, "≤ 0.06 cores", fmt.Sprintf("%.3f cores (%.3f CPU-s per 1000 req)", l.ProxyCores, l.ProxyCPUPer1k),
			status(l.ProxyCores <= targetCores)})
	}

	if l4 := r.find(topo, L4); l4 == nil || len(l4.Proxies) == 0 || l4.Proxies[0].LoadRSSMiB == 0 {
		ts = append(ts, notYet(figRSS, "≤ 20 MB", "no cross-node l4 latency run"))
	} else {
		var v float64
		for _, p := range l4.Proxies {
			v = max(v, p.LoadRSSMiB)
		}
		ts = append(ts, Target{figRSS, "≤ 20 MB (19.1 MiB)", fmt.Sprintf("%.1f MiB", v), status(v <= targetRSSMiB)})
	}

	ts = append(ts, r.addedP99Target(figL7, L7, "≤ 1 ms", targetL7AddedP99Micros))
	return append(ts, notYet(figWDS, "≤ 100 ms, 0 resent", controlPlaneNotMeasured))
}

// addedP99Target judges the p99 a mode adds over direct at the headline point.
func (r *Results) addedP99Target(figure, mode, goal string, limitMicros float64) Target {
	l := r.comparison(targetTopology, mode, Baseline).At(HeadlineConns)
	if l == nil {
		return notYet(figure, goal, r.missingPoint(mode, Baseline))
	}
	return Target{figure, goal, fmt.Sprintf("%+.0f µs", l.AddedP99), status(l.AddedP99 <= limitMicros)}
}

// missing names the first of the cross-node modes without a result: "needs the
// peer-hbone mode" when the run did not include it, or "no plain-tls result" when it
// failed before completing a round.
func (r *Results) missing(names ...string) string {
	for _, n := range names {
		m := r.find(targetTopology, n)
		switch {
		case m == nil:
			return "needs the " + n + " mode (" + targetTopology + ")"
		case m.Median == nil:
			return "no " + n + " result"
		}
	}
	return "no result"
}

// missingPoint is missing, or that the headline latency point was not run.
func (r *Results) missingPoint(names ...string) string {
	if why := r.missing(names...); why != "no result" {
		return why
	}
	return fmt.Sprintf("needs the %d-connection latency point", HeadlineConns)
}
