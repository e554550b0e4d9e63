package report

import (
	"fmt"
	"strconv"
	"strings"
)

// Markdown renders the run: settings, one row per mode (medians over rounds), the
// comparison rows (every mode against Baseline, l4 against peer-hbone and plain-tls),
// failures, the proxies' memory and the targets.
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
		fmt.Fprintf(&b, "| %s/%s |%s|%s|%s| | |%s|%s|%s|\n", c.Mode, c.Against,
			times(c.Gbps1Ratio), times(c.Gbps4Ratio), times(c.ConnsRatio), times(c.P99Ratio), times(c.CoresRatio), times(c.CPUPerGBRatio))
		if c.Against == Baseline {
			fmt.Fprintf(&b, "| %s − %s | | | | %+.0f | %+.0f | %+.0f | | |\n", c.Mode, c.Against, c.AddedP50, c.AddedP90, c.AddedP99)
		}
	}
	b.WriteString("\n")
	for _, m := range r.Modes {
		if m.Error != "" {
			fmt.Fprintf(&b, "**%s FAILED** after %d complete rounds: %s\n\n", m.Name, len(m.Rounds), m.Error)
		}
	}
	r.footprint(&b)
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

// footprint renders the memory of every mode's proxies, when any was read.
func (r *Results) footprint(b *strings.Builder) {
	var rows []string
	for _, m := range r.Modes {
		for _, p := range m.Proxies {
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |\n", m.Name, p.Name, mibCell(p.IdleRSSMiB), mibCell(p.LoadRSSMiB), mibCell(p.PeakRSSMiB)))
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("| mode | proxy | RSS idle MiB | RSS at load MiB (first latency run) | peak RSS MiB (VmHWM, bulk included) |\n|---|---|---:|---:|---:|\n")
	b.WriteString(strings.Join(rows, ""))
	b.WriteString("\n")
}

// times renders a ratio as the table cell " 1.23× ", or " " for 0 (not applicable).
func times(x float64) string {
	if x == 0 {
		return " "
	}
	return fmt.Sprintf(" %.2f× ", x)
}

func mibCell(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", x)
}
