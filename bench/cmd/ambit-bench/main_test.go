package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ambitmesh/ambit/bench/forward"
	"github.com/ambitmesh/ambit/bench/report"
)

func TestParseModes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"direct,l4,peer-hbone,plain-tls", allModes, ""},
		{" plain-tls , direct ", []string{"plain-tls", "direct"}, ""},
		{"l4,", []string{"l4"}, ""},
		{"l7", nil, "unknown mode"},
		{"l4,l4", nil, "twice"},
		{"", nil, "no mode"},
		{",,", nil, "no mode"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseModes(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseModes(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseModes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
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
