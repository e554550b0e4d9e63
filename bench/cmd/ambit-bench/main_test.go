package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/bench/forward"
	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

func TestParseList(t *testing.T) {
	known := modeNames()
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"direct,l4,l7,peer-hbone,plain-tls", known, ""},
		{" plain-tls , direct ", []string{"plain-tls", "direct"}, ""},
		{"l4,", []string{"l4"}, ""},
		{"l7", []string{"l7"}, ""},
		{"l8", nil, "unknown value"},
		{"l4,l4", nil, "twice"},
		{"", nil, "nothing given"},
		{",,", nil, "nothing given"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseList("modes", tc.in, known)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--modes") {
					t.Fatalf("parseList(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseConns(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{"1,4,16", []int{1, 4, 16}, ""},
		{" 16 ,1", []int{16, 1}, ""},
		{"4", []int{4}, ""},
		{"0", nil, "not a connection count"},
		{"-1", nil, "not a connection count"},
		{"four", nil, "not a connection count"},
		{"4,4", nil, "twice"},
		{"", nil, "nothing given"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseConns(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseConns(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseConns(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	modes := []string{"a", "b", "c", "d"}
	for r, want := range []string{"abcd", "bcda", "cdab", "dabc", "abcd"} {
		if got := strings.Join(rotation(modes, r), ""); got != want {
			t.Errorf("round %d: %s, want %s", r, got, want)
		}
	}
	if strings.Join(modes, "") != "abcd" {
		t.Errorf("rotation changed its input: %v", modes)
	}
	if got := rotation([]int{1, 4, 16}, 1); !slices.Equal(got, []int{4, 16, 1}) {
		t.Errorf("conns rotated once: %v", got)
	}
	if got := rotation([]int(nil), 2); got != nil {
		t.Errorf("rotation of nothing: %v", got)
	}
}

// TestCases: every topology gets every mode in its own namespace; same-node servers
// sit beside the client; only l7 declares a waypoint, one per topology, in its case's
// namespace.
func TestCases(t *testing.T) {
	all := cases(allTopologies, modeNames())
	if len(all) != 10 {
		t.Fatalf("%d cases, want 2 topologies × 5 modes: %v", len(all), all)
	}
	namespaces := map[string]bool{}
	for _, bc := range all {
		if namespaces[bc.namespace()] {
			t.Errorf("namespace %s used twice", bc.namespace())
		}
		namespaces[bc.namespace()] = true
	}
	for _, tc := range []struct {
		bc         benchCase
		ns, server string
	}{
		{benchCase{report.CrossNode, report.L4}, "l4-cross", "node-b"},
		{benchCase{report.SameNode, report.L4}, "l4-same", "node-a"},
		{benchCase{report.SameNode, report.PeerHBONE}, "peer-hbone-same", "node-a"},
	} {
		if tc.bc.namespace() != tc.ns || tc.bc.serverNode() != tc.server {
			t.Errorf("%s: namespace %s on %s, want %s on %s", tc.bc, tc.bc.namespace(), tc.bc.serverNode(), tc.ns, tc.server)
		}
	}
	wps := waypoints(all)
	if len(wps) != 2 || wps[0] != (mesh.WaypointSpec{Namespace: "l7-cross", Name: "waypoint"}) ||
		wps[1] != (mesh.WaypointSpec{Namespace: "l7-same", Name: "waypoint"}) {
		t.Errorf("waypoints %+v, want l7-cross/waypoint and l7-same/waypoint", wps)
	}
	if s := spec(report.L7); !s.ambient || !s.waypoint || spec(report.L4).waypoint {
		t.Errorf("l7 spec %+v, l4 spec %+v: only l7, an ambient mode, has a waypoint", s, spec(report.L4))
	}
}

func TestPathZtunnels(t *testing.T) {
	b := &bench{ztunnels: map[string]proxy{"node-a": {"ztunnel node-a", 1}, "node-b": {"ztunnel node-b", 2}}}
	names := func(ps []proxy) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		bc   benchCase
		want string
	}{
		{benchCase{report.CrossNode, report.L4}, "ztunnel node-a,ztunnel node-b"},
		{benchCase{report.SameNode, report.L4}, "ztunnel node-a"},
		{benchCase{report.SameNode, report.Baseline}, "ztunnel node-a,ztunnel node-b"},
	} {
		if got := names(b.pathZtunnels(tc.bc)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.bc, got, tc.want)
		}
	}
}

func TestPathError(t *testing.T) {
	zero := map[string]ztunnelCount{"node-a": {}, "node-b": {}}
	counts := func(aIn, aTotal, bIn, bTotal float64) map[string]ztunnelCount {
		return map[string]ztunnelCount{"node-a": {aIn, aTotal}, "node-b": {bIn, bTotal}}
	}
	tests := []struct {
		name     string
		bc       benchCase
		after    map[string]ztunnelCount
		waypoint float64
		err      string
	}{
		{"cross l4 through node-b", benchCase{report.CrossNode, report.L4}, counts(0, 4, 4, 4), 0, ""},
		{"cross l4 bypassed", benchCase{report.CrossNode, report.L4}, counts(0, 4, 0, 0), 0, "no new inbound mTLS"},
		{"same l4 through node-a", benchCase{report.SameNode, report.L4}, counts(4, 8, 0, 0), 0, ""},
		{"same l4 bypassed", benchCase{report.SameNode, report.L4}, counts(0, 4, 0, 0), 0, "no new inbound mTLS"},
		{"same l4 via node-b", benchCase{report.SameNode, report.L4}, counts(4, 8, 0, 4), 0, "hosts neither pod"},
		{"cross l7 through the waypoint", benchCase{report.CrossNode, report.L7}, counts(0, 4, 4, 8), warmupCalls, ""},
		{"cross l7 bypassed the waypoint", benchCase{report.CrossNode, report.L7}, counts(0, 4, 4, 4), 0, "bypassed it"},
		{"cross l7 partly bypassed", benchCase{report.CrossNode, report.L7}, counts(0, 4, 4, 4), warmupCalls - 1, "bypassed it"},
		{"cross l7 bypassed the mesh", benchCase{report.CrossNode, report.L7}, counts(0, 4, 0, 4), warmupCalls, "no new inbound mTLS"},
		{"same l7 through node-a", benchCase{report.SameNode, report.L7}, counts(4, 8, 0, 0), warmupCalls, ""},
		{"same l7 via node-b", benchCase{report.SameNode, report.L7}, counts(4, 8, 0, 4), warmupCalls, "hosts neither pod"},
		{"direct untouched", benchCase{report.CrossNode, report.Baseline}, zero, 0, ""},
		{"direct captured", benchCase{report.SameNode, report.Baseline}, counts(0, 1, 0, 0), 0, "want none"},
		{"forwarder captured", benchCase{report.CrossNode, report.PlainTLS}, counts(0, 0, 0, 2), 0, "want none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pathError(tc.bc, zero, tc.after, tc.waypoint)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestEstimate: the default run stays well under 30 minutes of measuring on the 10
// cases, and --full's durations are performance.md's.
func TestEstimate(t *testing.T) {
	c := config{rounds: 3, latencyConns: []int{1, 4, 16}, iperfTime: defaultIperfTime, latencyTime: defaultLatencyTime, connTime: defaultConnTime}
	if d := estimate(c, len(cases(allTopologies, modeNames()))); d > 20*time.Minute || d < 10*time.Minute {
		t.Errorf("default estimate %s, want between 10 and 20 minutes", d)
	}
	if fullLatencyTime < 20*time.Second || fullIperfTime < 10*time.Second || fullConnTime < 5*time.Second {
		t.Errorf("--full durations below performance.md's: %s, %s, %s", fullLatencyTime, fullIperfTime, fullConnTime)
	}
}

// TestForwarderArgs: every client mapping listens on 127.0.0.1 at a server port, and
// for plain-tls targets a port the server forwarder listens on, which in turn targets
// the same server port; peer-hbone's client names the server's HBONE port.
func TestForwarderArgs(t *testing.T) {
	server := netip.MustParseAddr("10.20.2.3")
	mappings := func(args []string) map[string]forward.Mapping {
		out := map[string]forward.Mapping{}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--forward" {
				m, err := forward.ParseMapping(args[i+1])
				if err != nil {
					t.Fatal(err)
				}
				out[m.Listen] = m
			}
		}
		return out
	}
	for _, mode := range []string{report.PeerHBONE, report.PlainTLS} {
		t.Run(mode, func(t *testing.T) {
			serverArgs, clientArgs := forwarderArgs(mode, server)
			srv, cli := mappings(serverArgs), mappings(clientArgs)
			if len(cli) != 2 {
				t.Fatalf("client mappings %v", cli)
			}
			for _, port := range []string{"5201", "8080"} {
				m, ok := cli["127.0.0.1:"+port]
				if !ok {
					t.Fatalf("no client listener on 127.0.0.1:%s: %v", port, cli)
				}
				if mode == report.PeerHBONE {
					if m.Target != "10.20.2.3:"+port {
						t.Errorf("CONNECT authority %s, want the server's port %s", m.Target, port)
					}
					continue
				}
				_, tlsPort, _ := strings.Cut(m.Target, ":")
				back, ok := srv[":"+tlsPort]
				if !ok || back.Target != "10.20.2.3:"+port {
					t.Errorf("client target %s: server mapping %+v, want it to reach port %s", m.Target, back, port)
				}
			}
			if mode == report.PeerHBONE && !slices.Contains(clientArgs, "10.20.2.3:15008") {
				t.Errorf("client args %v lack the HBONE proxy address", clientArgs)
			}
		})
	}
}
