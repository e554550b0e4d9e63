package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ambitmesh/ambit/e2e/capture"
	"github.com/ambitmesh/ambit/e2e/echo"
)

// Report is what the demo saw and the claims it checks.
type Report struct {
	RunID       string
	Elapsed     time.Duration
	CrossNode   []echo.TCPResult
	VIPHTTP     []echo.HTTPResult
	VIPTCP      []echo.TCPResult
	Permissive  []echo.HTTPResult
	Passthrough []echo.HTTPResult
	Capture     *capture.Summary
	FilterErr   error
	Namespaces  int
	Flows       map[flowKey]*flowStats
	app         *app
	checks      []check
}

// flowKey is one row of the flow table: a (source, destination, security) pair as
// ztunnel's metrics label it.
type flowKey struct {
	Reporter, Src, Dst, Security, SrcID, DstID, Service string
}

type flowStats struct{ Conns, Request, Response float64 }

type check struct {
	ok   bool
	text string
}

// addMetrics folds one ztunnel's istio_tcp_* counters into the flow table. Each flow is
// shown once: from the destination ztunnel when it is in the mesh, from the source's
// otherwise (passthrough).
func (r *Report) addMetrics(text string) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return fmt.Errorf("parse metrics: %w", err)
	}
	if r.Flows == nil {
		r.Flows = map[flowKey]*flowStats{}
	}
	for name, field := range map[string]func(*flowStats, float64){
		"istio_tcp_connections_opened_total": func(s *flowStats, v float64) { s.Conns += v },
		"istio_tcp_received_bytes_total":     func(s *flowStats, v float64) { s.Request += v },
		"istio_tcp_sent_bytes_total":         func(s *flowStats, v float64) { s.Response += v },
	} {
		fam := fams[name]
		if fam == nil {
			continue
		}
		for _, mt := range fam.Metric {
			l := map[string]string{}
			for _, lp := range mt.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			inMeshDst := l["destination_principal"] != "unknown"
			if (l["reporter"] == "source") == inMeshDst {
				continue
			}
			k := flowKey{
				Reporter: l["reporter"], Security: l["connection_security_policy"],
				Src:   l["source_workload_namespace"] + "/" + l["source_workload"],
				Dst:   l["destination_workload_namespace"] + "/" + l["destination_workload"],
				SrcID: l["source_principal"], DstID: l["destination_principal"], Service: l["destination_service"],
			}
			if r.Flows[k] == nil {
				r.Flows[k] = &flowStats{}
			}
			field(r.Flows[k], mt.GetCounter().GetValue())
		}
	}
	return nil
}

func (r *Report) evaluate() {
	a := r.app
	r.checks = nil
	add := func(ok bool, format string, args ...any) {
		r.checks = append(r.checks, check{ok, fmt.Sprintf(format, args...)})
	}
	ok, peer := tcpAllOK(r.CrossNode, "server-1", a.client.IP)
	add(ok, "cross-node HBONE: client (node-a) → server-1 (node-b) pod IP; the server saw source %s (client pod IP %s)", peer, a.client.IP)
	add(r.Capture != nil && !r.Capture.Contains([]byte(markerMesh)) && r.Capture.TCPPayload[15008] > 0,
		"wire capture on node-a's link: %d B of TLS to :15008, mesh plaintext marker never seen", payload(r.Capture, 15008))
	add(r.Capture != nil && r.Capture.Contains([]byte(markerPlain)),
		"capture sanity: the non-mesh plaintext marker was seen on the wire")
	spread := map[string]int{}
	okVIP := len(r.VIPHTTP) == vipRequests
	for _, h := range r.VIPHTTP {
		spread[h.Pod]++
		okVIP = okVIP && h.Status == 200 && peerIP(h.Peer) == a.client.IP
	}
	vipTCPok, _ := tcpAllOK(r.VIPTCP, "", a.client.IP)
	add(okVIP && vipTCPok && spread["server-0"] > 0 && spread["server-1"] > 0,
		"Service VIP %s spread over both replicas: server-0 ×%d, server-1 ×%d (HTTP); TCP ×%d ok", serverVIP, spread["server-0"], spread["server-1"], len(r.VIPTCP))
	add(httpAllOK(r.Permissive, "server-0", a.legacy.IP),
		"PERMISSIVE: non-mesh legacy pod → ambient server-0 in plaintext; server saw %s", a.legacy.IP)
	add(httpAllOK(r.Passthrough, "legacy", a.client.IP),
		"passthrough: ambient client → non-mesh legacy pod")
	add(r.hasFlow("demo/client", "demo/server", "mutual_tls", "spiffe://cluster.local/ns/demo/sa/client", "spiffe://cluster.local/ns/demo/sa/server"),
		"metrics: mTLS flow client → server with SPIFFE identities on both ends")
	add(r.FilterErr == nil, "no iptables/nftables tables in any of the %d namespaces%s", r.Namespaces, errSuffix(r.FilterErr))
}

func (r *Report) hasFlow(src, dst, sec, srcID, dstID string) bool {
	for k, s := range r.Flows {
		if k.Src == src && k.Dst == dst && k.Security == sec && k.SrcID == srcID && k.DstID == dstID && s.Conns > 0 {
			return true
		}
	}
	return false
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	r.evaluate()
	for _, c := range r.checks {
		if !c.ok {
			return true
		}
	}
	return false
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	r.evaluate()
	fmt.Fprintf(w, "\nAmbit demo — run %s, 2 nodes, 4 pods, %s\n\n", r.RunID, r.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintln(w, "FLOWS (from the ztunnels' istio_tcp_* metrics)")
	keys := make([]flowKey, 0, len(r.Flows))
	for k := range r.Flows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	fmt.Fprintf(w, "  %-14s %-15s %-11s %-42s %-42s %5s %17s\n", "SOURCE", "DESTINATION", "SECURITY", "SOURCE IDENTITY", "DESTINATION IDENTITY", "CONNS", "BYTES REQ/RESP")
	for _, k := range keys {
		s := r.Flows[k]
		fmt.Fprintf(w, "  %-14s %-15s %-11s %-42s %-42s %5.0f %8.0f/%-8.0f\n", k.Src, k.Dst, security(k), k.SrcID, k.DstID, s.Conns, s.Request, s.Response)
	}
	fmt.Fprintln(w, "\nCHECKS")
	for _, c := range r.checks {
		mark := "✓"
		if !c.ok {
			mark = "✗"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, c.text)
	}
	if r.Failed() {
		fmt.Fprintln(w, "\nRESULT: FAILED")
		r.printFailures(w)
		return
	}
	fmt.Fprintln(w, "\nRESULT: all checks passed")
}

func (r *Report) printFailures(w io.Writer) {
	for name, res := range map[string][]echo.HTTPResult{"vip-http": r.VIPHTTP, "permissive": r.Permissive, "passthrough": r.Passthrough} {
		for _, h := range res {
			if h.Error != "" || h.Status != 200 {
				fmt.Fprintf(w, "  %s: status %d pod %q peer %q error %q\n", name, h.Status, h.Pod, h.Peer, h.Error)
			}
		}
	}
	for name, res := range map[string][]echo.TCPResult{"cross-node": r.CrossNode, "vip-tcp": r.VIPTCP} {
		for _, t := range res {
			if !t.OK {
				fmt.Fprintf(w, "  %s: pod %q peer %q error %q\n", name, t.Pod, t.Peer, t.Error)
			}
		}
	}
}

func security(k flowKey) string {
	switch {
	case k.Security == "mutual_tls":
		return "mTLS"
	case k.Reporter == "source":
		return "passthrough"
	default:
		return "plaintext"
	}
}

func tcpAllOK(res []echo.TCPResult, pod string, src netip.Addr) (bool, string) {
	if len(res) == 0 {
		return false, "nothing"
	}
	peer := ""
	for _, t := range res {
		peer = t.Peer
		if !t.OK || (pod != "" && t.Pod != pod) || peerIP(t.Peer) != src {
			return false, peer
		}
	}
	return true, peerIP(peer).String()
}

func httpAllOK(res []echo.HTTPResult, pod string, src netip.Addr) bool {
	for _, h := range res {
		if h.Status != 200 || h.Pod != pod || peerIP(h.Peer) != src {
			return false
		}
	}
	return len(res) > 0
}

func peerIP(s string) netip.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func payload(s *capture.Summary, port uint16) int {
	if s == nil {
		return 0
	}
	return s.TCPPayload[port]
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
