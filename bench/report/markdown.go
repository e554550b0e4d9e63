package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// topologyTitles describe the topologies in the section headings.
var topologyTitles = map[string]string{
	CrossNode: "client pod on node-a, server pod on node-b",
	SameNode:  "client and server pods both on node-a",
}

// mainColumns are the main table's figures; the latency and CPU ones read the
// HeadlineConns point.
var mainColumns = []struct {
	title string
	get   func(*Figures) float64
	prec  int
}{
	{"iperf3 1 stream Gbit/s", func(f *Figures) float64 { return f.Gbps1 }, 2},
	{"iperf3 4 streams Gbit/s", func(f *Figures) float64 { return f.Gbps4 }, 2},
	{"new conns/s", func(f *Figures) float64 { return f.ConnsPerSec }, 0},
	{"p50 µs", func(f *Figures) float64 { return headline(f).P50Micros }, 0},
	{"p90 µs", func(f *Figures) float64 { return headline(f).P90Micros }, 0},
	{"p99 µs", func(f *Figures) float64 { return headline(f).P99Micros }, 0},
	{"proxies' CPU cores", func(f *Figures) float64 { return headline(f).ProxyCores }, 3},
	{"proxies' CPU-s per 1000 req", func(f *Figures) float64 { return headline(f).ProxyCPUPer1k }, 3},
	{"proxies' CPU-s per GB (1 stream)", func(f *Figures) float64 { return f.ProxyCPUPerGB }, 2},
}

// headline is the HeadlineConns point, or a zero point when it was not measured.
func headline(f *Figures) *Latency {
	if l := f.At(HeadlineConns); l != nil {
		return l
	}
	return &Latency{}
}

// Markdown renders the run: settings, per topology a main table (medians, ratios to
// direct, the latency each mode adds, l4 against the two baselines, l7 against l4) and a
// latency table (every connection count), then failed modes, the proxies' memory and the
// targets.
func (r *Results) Markdown() string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "## Ambit benchmark %s\n\n", r.RunID)
	fmt.Fprintf(&b, "Medians of %d rounds, modes rotated. iperf3 %d s; latency: fortio HTTP/1.1, %d req/s, %s conns, %d B payload, %s per point; "+
		"connection rate: fortio -keepalive=false, max rate, %d conns, %s. %d CPUs, kernel %s, loadavg at start %s. Took %s.\n\n",
		s.Rounds, s.IperfSeconds, s.LatencyQPS, joinInts(r.latencyConns(), "/"), s.PayloadBytes, s.LatencyDuration,
		s.ConnConns, s.ConnDuration, s.CPUs, s.Kernel, s.LoadAvgAtStart, r.Elapsed)
	for _, topo := range r.topologies() {
		fmt.Fprintf(&b, "### %s: %s\n\n", topo, topologyTitles[topo])
		r.mainTable(&b, topo)
		r.latencyTable(&b, topo)
	}
	for _, m := range r.Modes {
		if m.Error != "" {
			fmt.Fprintf(&b, "**%s %s FAILED** after %d complete rounds: %s\n\n", m.Topology, m.Name, len(m.Rounds), m.Error)
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

// mainTable renders one topology's modes, with latency and CPU at HeadlineConns.
func (r *Results) mainTable(b *strings.Builder, topo string) {
	fmt.Fprintf(b, "Latency and proxies' CPU at %d req/s over %d conns.\n\n", r.Settings.LatencyQPS, HeadlineConns)
	b.WriteString("| mode |")
	for _, c := range mainColumns {
		b.WriteString(" " + c.title + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(mainColumns)) + "\n")
	for _, m := range r.Modes {
		if m.Topology != topo {
			continue
		}
		fmt.Fprintf(b, "| %s |", m.Name)
		for _, c := range mainColumns {
			if m.Median == nil {
				b.WriteString(" — |")
				continue
			}
			b.WriteString(" " + strconv.FormatFloat(c.get(m.Median), 'f', c.prec, 64) + " |")
		}
		b.WriteString("\n")
	}
	for _, c := range r.Comparisons {
		if c.Topology != topo {
			continue
		}
		l := c.At(HeadlineConns)
		if l == nil {
			l = &LatencyComparison{}
		}
		// The CPU-s per 1000 req ratio is left out: at a fixed rate it repeats the cores ratio.
		fmt.Fprintf(b, "| %s/%s |%s|%s|%s| | |%s|%s| |%s|\n", c.Mode, c.Against,
			times(c.Gbps1Ratio), times(c.Gbps4Ratio), times(c.ConnsRatio), times(l.P99Ratio), times(l.CoresRatio), times(c.CPUPerGBRatio))
		if c.added() && c.At(HeadlineConns) != nil {
			fmt.Fprintf(b, "| %s − %s | | | | %+.0f | %+.0f | %+.0f | | | |\n", c.Mode, c.Against, l.AddedP50, l.AddedP90, l.AddedP99)
		}
	}
	b.WriteString("\n")
}

// latencyTable renders one topology's latency points: p50/p90/p99 and the proxies'
// CPU per connection count, the latency each mode adds over direct, and l4's p99 and
// CPU against the two baselines.
func (r *Results) latencyTable(b *strings.Builder, topo string) {
	conns := r.latencyConns()
	if len(conns) == 0 {
		return
	}
	fmt.Fprintf(b, "Latency at %d req/s by connection count: p50/p90/p99 µs and the proxies' CPU cores; "+
		"\"(N/s)\" marks a point where fortio reached under %.0f %% of the asked rate.\n\n| mode |", r.Settings.LatencyQPS, 100*shortfallShare)
	for _, n := range conns {
		fmt.Fprintf(b, " %s p50/p90/p99 µs | cores |", plural(n, "conn"))
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", 2*len(conns)) + "\n")
	for _, m := range r.Modes {
		if m.Topology != topo {
			continue
		}
		fmt.Fprintf(b, "| %s |", m.Name)
		for _, n := range conns {
			if l := m.Median.At(n); l != nil {
				fmt.Fprintf(b, " %.0f/%.0f/%.0f%s | %.3f |", l.P50Micros, l.P90Micros, l.P99Micros, r.shortfall(l), l.ProxyCores)
			} else {
				b.WriteString(" — | — |")
			}
		}
		b.WriteString("\n")
	}
	for _, c := range r.Comparisons {
		if c.Topology != topo {
			continue
		}
		if c.added() {
			fmt.Fprintf(b, "| %s − %s |", c.Mode, c.Against)
		} else {
			fmt.Fprintf(b, "| %s/%s |", c.Mode, c.Against)
		}
		for _, n := range conns {
			switch l := c.At(n); {
			case l == nil:
				b.WriteString(" — | |")
			case c.added():
				fmt.Fprintf(b, " %+.0f/%+.0f/%+.0f |%s|", l.AddedP50, l.AddedP90, l.AddedP99, times(l.CoresRatio))
			default:
				fmt.Fprintf(b, " p99 %.2f× |%s|", l.P99Ratio, times(l.CoresRatio))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// shortfallShare is the share of the asked rate below which a latency point shows the
// rate fortio reached. With -nocatchup fortio skips every slot that a call, with the
// wake-up after it, ran past; over one connection the slots are 1 ms apart, so on a
// loaded machine it skips many.
const shortfallShare = 0.95

// shortfall is " (N/s)" for a point whose median rate fell short of the asked one.
func (r *Results) shortfall(l *Latency) string {
	if r.Settings.LatencyQPS > 0 && l.QPS < shortfallShare*float64(r.Settings.LatencyQPS) {
		return fmt.Sprintf(" (%.0f/s)", l.QPS)
	}
	return ""
}

// latencyConns is the run's connection counts: the settings', else those measured.
func (r *Results) latencyConns() []int {
	if len(r.Settings.LatencyConns) > 0 {
		return r.Settings.LatencyConns
	}
	var out []int
	for _, m := range r.Modes {
		if m.Median == nil {
			continue
		}
		for _, l := range m.Median.Latency {
			if !slices.Contains(out, l.Conns) {
				out = append(out, l.Conns)
			}
		}
	}
	return out
}

// footprint renders the memory of every mode's proxies, when any was read.
func (r *Results) footprint(b *strings.Builder) {
	var rows []string
	for _, m := range r.Modes {
		for _, p := range m.Proxies {
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |\n", m.Topology, m.Name, p.Name,
				mibCell(p.IdleRSSMiB), mibCell(p.LoadRSSMiB), mibCell(p.PeakRSSMiB)))
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("| topology | mode | proxy | RSS idle MiB | RSS at load MiB (first-round latency runs) | peak RSS MiB (VmHWM, bulk included) |\n" +
		"|---|---|---|---:|---:|---:|\n")
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

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func joinInts(xs []int, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}
