package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ambitmesh/ambit/bench/report"
)

// modeSpec says how a mode carries its bytes.
type modeSpec struct {
	name      string
	ambient   bool   // the mode's namespace is enrolled in the mesh
	forwarder string // binary of the forwarder pair carrying the bytes ("" for none)
	// waypoint: the server's Service uses a waypoint (istio.io/use-waypoint), which
	// runs on the server's node.
	waypoint bool
}

// modeSpecs are the modes the benchmark knows, in the default --modes order (which is
// the first round's order; later rounds rotate it).
var modeSpecs = []modeSpec{
	{name: report.Baseline},
	{name: report.L4, ambient: true},
	{name: report.L7, ambient: true, waypoint: true},
	{name: report.PeerHBONE, forwarder: hboneFwdBin},
	{name: report.PlainTLS, forwarder: tlsFwdBin},
}

// allTopologies are the topologies the benchmark knows, in the default --topologies order.
var allTopologies = []string{report.CrossNode, report.SameNode}

// clientNode is where every client pod runs; ztunnelNodes are the mesh's nodes.
const clientNode = "node-a"

var ztunnelNodes = []string{"node-a", "node-b"}

func modeNames() []string {
	out := make([]string, len(modeSpecs))
	for i, s := range modeSpecs {
		out[i] = s.name
	}
	return out
}

// spec returns the named mode's spec (the zero spec for an unknown name).
func spec(mode string) modeSpec {
	for _, s := range modeSpecs {
		if s.name == mode {
			return s
		}
	}
	return modeSpec{name: mode}
}

// benchCase is one mode in one topology: its own namespace, client and server pods.
type benchCase struct{ topology, mode string }

func (c benchCase) String() string { return c.mode + " (" + c.topology + ")" }

// namespace is the case's Kubernetes namespace, e.g. "l4-cross" or "plain-tls-same".
func (c benchCase) namespace() string {
	if c.topology == report.SameNode {
		return c.mode + "-same"
	}
	return c.mode + "-cross"
}

// serverNode is where the case's server pod runs: beside the client for same-node.
func (c benchCase) serverNode() string {
	if c.topology == report.SameNode {
		return clientNode
	}
	return "node-b"
}

// cases lists every topology's modes, topology by topology.
func cases(topologies, modes []string) []benchCase {
	var out []benchCase
	for _, t := range topologies {
		for _, m := range modes {
			out = append(out, benchCase{t, m})
		}
	}
	return out
}

// rotation is the order of round r (from 0): xs rotated left by r, so each element
// takes each position in turn.
func rotation[T any](xs []T, r int) []T {
	if len(xs) == 0 {
		return nil
	}
	k := r % len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// parseList parses a comma-separated flag value: known names, each once, at least one.
func parseList(flagName, s string, known []string) ([]string, error) {
	var out []string
	for _, x := range strings.Split(s, ",") {
		x = strings.TrimSpace(x)
		switch {
		case x == "":
			continue
		case !slices.Contains(known, x):
			return nil, fmt.Errorf("--%s: unknown value %q (known: %s)", flagName, x, strings.Join(known, ", "))
		case slices.Contains(out, x):
			return nil, fmt.Errorf("--%s: %s given twice", flagName, x)
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: nothing given", flagName)
	}
	return out, nil
}

// parseConns parses --latency-conns: positive connection counts, each once, at least one.
func parseConns(s string) ([]int, error) {
	var out []int
	for _, x := range strings.Split(s, ",") {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		n, err := strconv.Atoi(x)
		switch {
		case err != nil || n < 1 || n > 1024:
			return nil, fmt.Errorf("--latency-conns: %q is not a connection count (1 to 1024)", x)
		case slices.Contains(out, n):
			return nil, fmt.Errorf("--latency-conns: %d given twice", n)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--latency-conns: nothing given")
	}
	return out, nil
}

// perRunOverhead is about what each tool run adds to its own duration (process start
// in the pod, connection setup, wind-down); a default run here took 12m58s in all
// against 12m48s of tool durations.
const perRunOverhead = 200 * time.Millisecond

// estimate is about how long the rounds take (setup excluded) for n measured cases.
func estimate(c config, n int) time.Duration {
	runs := len(c.latencyConns) + 3 // latency points, connection rate, iperf3 ×2
	perCase := time.Duration(len(c.latencyConns))*c.latencyTime + c.connTime + 2*c.iperfTime +
		time.Duration(runs)*perRunOverhead
	return time.Duration(c.rounds*n) * perCase
}
