package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/ambitmesh/ambit/bench/forward"
	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Forwarder binaries, expected in --bin (the Makefile's bench target builds them).
const (
	tlsFwdBin   = "ambit-tlsfwd"    // ./bench/cmd/ambit-tlsfwd
	hboneFwdBin = "istio-hbone-fwd" // ./cmd/istio-hbone-fwd of the e2e/interop module
)

// certTTL is the forwarders' certificate lifetime; it outlasts any run.
const certTTL = 12 * time.Hour

// serverForwarderPorts are the ports the mode's server forwarder listens on.
func serverForwarderPorts(mode string) []int {
	switch mode {
	case report.PeerHBONE:
		return []int{wire.PortHBONE}
	case report.PlainTLS:
		return []int{iperfPort + tlsPortOffset, fortioPort + tlsPortOffset}
	}
	return nil
}

// forwarderArgs returns the server's and the client's argv (after the binary) for the
// mode, given the server pod's address. Both client forwarders listen on 127.0.0.1 at
// the servers' ports, so the load generators only change the address they target.
func forwarderArgs(mode string, server netip.Addr) (serverArgs, clientArgs []string) {
	at := func(port int) string { return netip.AddrPortFrom(server, uint16(port)).String() }
	local := func(port int) string {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	}
	if mode == report.PeerHBONE {
		return []string{"--role", "server", "--listen", fmt.Sprintf(":%d", wire.PortHBONE)},
			[]string{"--role", "client", "--proxy", at(wire.PortHBONE),
				"--forward", local(iperfPort) + "=" + at(iperfPort), "--forward", local(fortioPort) + "=" + at(fortioPort)}
	}
	return []string{"--role", "server",
			"--forward", fmt.Sprintf(":%d=%s", iperfPort+tlsPortOffset, at(iperfPort)),
			"--forward", fmt.Sprintf(":%d=%s", fortioPort+tlsPortOffset, at(fortioPort))},
		[]string{"--role", "client",
			"--forward", local(iperfPort) + "=" + at(iperfPort+tlsPortOffset),
			"--forward", local(fortioPort) + "=" + at(fortioPort+tlsPortOffset)}
}

// startForwarders issues the pods' certificates from the mesh CA (identities of the
// case's client and server service accounts), starts the server forwarder in the server
// pod and the client forwarder in the client pod, and points the pair at the client
// forwarder.
func (b *bench) startForwarders(ctx context.Context, bc benchCase, p *pair) error {
	bin := filepath.Join(b.cfg.bin, spec(bc.mode).forwarder)
	serverArgs, clientArgs := forwarderArgs(bc.mode, p.server.IP)
	ns := bc.namespace()
	var procs [2]*cluster.Process
	for i, s := range []struct {
		role string
		pod  *cluster.Pod
		args []string
	}{{"server", p.server, serverArgs}, {"client", p.client, clientArgs}} {
		id := spiffe.Identity{TrustDomain: b.m.CA.TrustDomain(), Namespace: ns, ServiceAccount: s.role}
		files, err := forward.IssueFiles(b.m.CA, id, certTTL, filepath.Join(b.m.Dir, "bench-certs", ns+"-"+s.role))
		if err != nil {
			return err
		}
		argv := append(append([]string{bin}, s.args...), files.Args()...)
		if procs[i], err = s.pod.Start(ctx, b.m.LogPath(ns+"-"+s.role+"-forwarder"), argv...); err != nil {
			return fmt.Errorf("start %s forwarder: %w", s.role, err)
		}
	}
	p.target = netip.MustParseAddr("127.0.0.1")
	p.proxies = []proxy{{"client forwarder (" + clientNode + ")", procs[1].Pid}, {"server forwarder (" + bc.serverNode() + ")", procs[0].Pid}}
	return nil
}
