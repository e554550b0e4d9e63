package controlplane

import (
	"fmt"
	"strings"
)

// TargetP99Ms is performance.md's event-to-push target at 10,000 pods and 100 clients.
const TargetP99Ms = 100

// Markdown renders results as a table followed by one line per target, met or missed.
func Markdown(results []*Result) string {
	var b strings.Builder
	b.WriteString("| source | pods / services / clients | changes/s | event→last client p50/p90/p99/max ms | event→first client p50/p99 ms | missing | resources, bytes per change per client | istiod-lite CPU ms per change | istiod-lite RSS / peak MiB | initial sync s | resent on reconnect | restart→marker ms |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d / %d / %d | %.0f | %.1f / %.1f / %.1f / %.1f | %.1f / %.1f | %d of %d | %.2f, %.0f B | %.2f | %.0f / %.0f | %.1f | %d | %.0f |\n",
			r.Source, r.Pods, r.Services, r.Clients, r.Rate, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.FirstP50Ms, r.FirstP99Ms,
			r.Missing, r.Changes, r.ResourcesPerChange, r.BytesPerChange, r.IstiodCPUMsPerChange, r.IstiodRSSMiB, r.IstiodPeakMiB,
			r.InitialSyncSeconds, r.ResentOnReconnect, r.ReconnectMarkerMs)
	}
	b.WriteString("\n")
	for _, r := range results {
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "MISSED"
		}
		fmt.Fprintf(&b, "- %s: event-to-push p99 %.1f ms (target ≤ %d ms at 10k pods / 100 clients): %s; resent on reconnect %d (target 0): %s",
			r.Source, r.P99Ms, TargetP99Ms, verdict(r.P99Ms <= TargetP99Ms && r.Missing == 0), r.ResentOnReconnect, verdict(r.ResentOnReconnect == 0))
		if r.LoadSeconds > 0 {
			fmt.Fprintf(&b, " (objects written through the API in %.0f s)", r.LoadSeconds)
		}
		b.WriteString(".\n")
	}
	return b.String()
}
