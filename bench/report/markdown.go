package report

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Markdown renders the run: settings, one row per mode (medians over rounds), the
// comparison rows against Baseline, failures, idle footprint and the targets.
func (r *Results) Markdown() string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "## Ambit benchmark %s\n\n", r.RunID)
	fmt.Fprintf(&b, "Medians of %d rounds, modes rotated. iperf3 %d s; latency: fortio HTTP/1.1, %d req/s, %d conns, %d B payload, %s; "+
		"connection rate: fortio -keepalive=false, max rate, %d conns, %s. %d CPUs, kernel %s, loadavg at start %s. Took %s.\n\n",
		s.Rounds, s.IperfSeconds, s.LatencyQPS, s.LatencyConns, s.PayloadBytes, s.LatencyDuration,
		s.ConnConns, s.ConnDuration, s.CPUs, s.Kernel, s.LoadAvgAtStart, r.Elapsed)
	b.WriteString("| mode |")
	for _, f := range fields {
		b.WriteString(" " + f.title + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(fields)) + "\n")
	for _, m := range r.Modes {
		fmt.Fprintf(&b, "| %s |", m.Name)
		for _, f := range fields {
			if m.Median == nil {
				b.WriteString(" — |")
				continue
			}
			b.WriteString(" " + strconv.FormatFloat(*f.get(m.Median), 'f', f.prec, 64) + " |")
		}
		b.WriteString("\n")
	}
	for _, c := range r.Comparisons {
		fmt.Fprintf(&b, "| %s/%s | %.2f× | %.2f× | %.2f× | | | %.2f× | | |\n",
			c.Mode, Baseline, c.Gbps1Ratio, c.Gbps4Ratio, c.ConnsRatio, c.P99Ratio)
		fmt.Fprintf(&b, "| %s − %s | | | | %+.0f | %+.0f | %+.0f | | |\n",
			c.Mode, Baseline, c.AddedP50, c.AddedP90, c.AddedP99)
	}
	b.WriteString("\n")
	for _, m := range r.Modes {
		if m.Error != "" {
			fmt.Fprintf(&b, "**%s FAILED** after %d complete rounds: %s\n\n", m.Name, len(m.Rounds), m.Error)
		}
	}
	fp := r.Footprint
	for _, row := range []struct {
		what string
		mib  map[string]float64
	}{
		{"idle (pods enrolled, before any traffic)", fp.IdleRSSMiB},
		{"at load (first l4 latency run, before any bulk transfer)", fp.LoadRSSMiB},
		{"peak over the run (VmHWM, bulk transfers included)", fp.PeakRSSMiB},
	} {
		if len(row.mib) == 0 {
			continue
		}
		fmt.Fprintf(&b, "ztunnel RSS %s:", row.what)
		for _, n := range slices.Sorted(maps.Keys(row.mib)) {
			fmt.Fprintf(&b, " %s %.1f MiB;", n, row.mib[n])
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString("| target (performance.md) | goal | this run | status |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		v := t.Value
		if v == "" {
			v = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Figure, t.Goal, v, t.Status)
	}
	return b.String()
}
