package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/bench/report"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// Ports the server pods listen on. The peer-hbone and plain-tls client forwarders
// listen on the same two ports on 127.0.0.1 in the client pod.
const (
	iperfPort  = 5201
	fortioPort = 8080
	// tlsPortOffset moves a port to the plain-tls server forwarder's TLS port for it
	// (5201 → 25201, 8080 → 28080).
	tlsPortOffset = 20000
)

// bench is one run's mesh, pods and tool settings.
type bench struct {
	cfg      config
	m        *mesh.Mesh
	ztunnels []proxy // node-a's and node-b's ztunnels
	pairs    map[string]*pair
}

// proxy is a process whose CPU and memory a mode accounts: a ztunnel or a forwarder.
type proxy struct {
	name string
	pid  int
}

// pair is one mode's client (node-a) and server (node-b), cross-node as in
// performance.md, and how the load generators reach the server.
type pair struct {
	client, server *cluster.Pod
	// target is the address the load generators connect to: the server pod, or
	// 127.0.0.1 where a client forwarder listens.
	target netip.Addr
	// proxies carry the mode's bytes (the ztunnels for direct: off the path).
	proxies []proxy
}

func (p *pair) url() string {
	return "http://" + netip.AddrPortFrom(p.target, fortioPort).String() + "/echo"
}

// ambient reports whether the mode's pods are enrolled in the mesh.
func ambient(mode string) bool { return mode == report.L4 }

// deploy creates one namespace per mode (ambient for l4 only), its two pods, the
// servers and the mode's forwarders, and waits until l4's pods are enrolled and
// everything listens.
func (b *bench) deploy(ctx context.Context) error {
	b.pairs = map[string]*pair{}
	for _, mode := range b.cfg.modes {
		cfg := b.m.Config
		for _, err := range []error{cfg.Namespace(mode, ambient(mode)), cfg.ServiceAccount(mode, "client"), cfg.ServiceAccount(mode, "server")} {
			if err != nil {
				return fmt.Errorf("deploy %s: %w", mode, err)
			}
		}
		p := &pair{}
		var err error
		if p.client, err = b.m.AddPod(ctx, mesh.PodSpec{Node: "node-a", Namespace: mode, Name: "client", ServiceAccount: "client",
			Labels: map[string]string{"app": "client"}}); err != nil {
			return fmt.Errorf("deploy %s: %w", mode, err)
		}
		ports := []corev1.ContainerPort{{Name: "iperf3", ContainerPort: iperfPort}, {Name: "http", ContainerPort: fortioPort}}
		if p.server, err = b.m.AddPod(ctx, mesh.PodSpec{Node: "node-b", Namespace: mode, Name: "server", ServiceAccount: "server",
			Labels: map[string]string{"app": "server"}, Ports: ports}); err != nil {
			return fmt.Errorf("deploy %s: %w", mode, err)
		}
		if err := b.startServers(ctx, mode, p.server); err != nil {
			return err
		}
		p.target, p.proxies = p.server.IP, b.ztunnels
		if forwarded(mode) {
			if err := b.startForwarders(ctx, mode, p); err != nil {
				return fmt.Errorf("deploy %s: %w", mode, err)
			}
		}
		b.pairs[mode] = p
	}
	for _, mode := range b.cfg.modes {
		if !ambient(mode) {
			continue
		}
		for _, pod := range []*cluster.Pod{b.pairs[mode].client, b.pairs[mode].server} {
			if err := b.m.WaitEnrolled(ctx, pod); err != nil {
				return fmt.Errorf("deploy %s: %w", mode, err)
			}
		}
	}
	if err := b.m.WaitWorkloads(ctx, 2*len(b.cfg.modes)); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	for _, mode := range b.cfg.modes {
		p := b.pairs[mode]
		if err := waitListening(ctx, p.server, append([]int{iperfPort, fortioPort}, serverForwarderPorts(mode)...)...); err != nil {
			return fmt.Errorf("deploy %s: %w", mode, err)
		}
		if forwarded(mode) {
			if err := waitListening(ctx, p.client, iperfPort, fortioPort); err != nil {
				return fmt.Errorf("deploy %s: client forwarder: %w", mode, err)
			}
		}
	}
	return nil
}

// startServers runs iperf3 and fortio's HTTP echo server (every other fortio listener
// and its UI off) in the server pod.
func (b *bench) startServers(ctx context.Context, mode string, pod *cluster.Pod) error {
	servers := [][]string{
		{b.cfg.iperf3, "-s", "-p", fmt.Sprint(iperfPort)},
		{b.cfg.fortio, "server", "-http-port", fmt.Sprint(fortioPort), "-grpc-port", "disabled", "-redirect-port", "disabled",
			"-tcp-port", "disabled", "-udp-port", "disabled", "-ui-path", "", "-loglevel", "Warning"},
	}
	for _, argv := range servers {
		name := "server-" + mode + "-" + argv[0][strings.LastIndexByte(argv[0], '/')+1:]
		if _, err := pod.Start(ctx, b.m.LogPath(name), argv...); err != nil {
			return fmt.Errorf("deploy %s: start %s: %w", mode, argv[0], err)
		}
	}
	return nil
}

// waitListening polls `ss` inside the pod until every port has a listening TCP socket;
// unlike a probe connection it leaves the servers' statistics untouched.
func waitListening(ctx context.Context, pod *cluster.Pod, ports ...int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := pod.Run(ctx, "ss", "-Hltn")
		missing := missingListeners(string(out), ports)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("servers in %s not listening on %v (ss: %v)", pod, missing, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// missingListeners returns the ports without a listener in `ss -Hltn` output, whose
// fourth column is the local address ("*:8080", "0.0.0.0:5201", "[::]:5201").
func missingListeners(ssOut string, ports []int) []int {
	have := map[string]bool{}
	for _, line := range strings.Split(ssOut, "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			have[f[3][strings.LastIndexByte(f[3], ':')+1:]] = true
		}
	}
	var missing []int
	for _, p := range ports {
		if !have[fmt.Sprint(p)] {
			missing = append(missing, p)
		}
	}
	return missing
}

// verify warms the mode up (certificates, connection pools) and checks that its
// traffic takes the intended path: through node-b's ztunnel over mTLS for l4, past both
// ztunnels for the others. (The forwarder modes' load generators reach the server only
// through the client forwarder on 127.0.0.1, which reaches it only over TLS.) A
// benchmark of the wrong path is worse than none.
func (b *bench) verify(ctx context.Context, mode string) error {
	before, err := b.ztunnelConns(mode)
	if err != nil {
		return err
	}
	if _, err := b.fortio(ctx, mode, b.pairs[mode].url(), "-qps", "0", "-n", "200", "-c", fmt.Sprint(b.cfg.conns)); err != nil {
		return fmt.Errorf("warm up %s: %w", mode, err)
	}
	after, err := b.ztunnelConns(mode)
	if err != nil {
		return err
	}
	switch {
	case !ambient(mode) && after != before:
		return fmt.Errorf("verify %s: ztunnels counted %v new connections, want none", mode, after-before)
	case ambient(mode) && after == before:
		return fmt.Errorf("verify %s: node-b's ztunnel counted no new mTLS connection; traffic bypassed the mesh", mode)
	}
	return nil
}

// ztunnelConns counts connections the ztunnels opened: for a mode off the mesh, every
// connection on both; for l4, mTLS connections node-b's ztunnel took in for the mode's
// namespace.
func (b *bench) ztunnelConns(mode string) (float64, error) {
	var total float64
	for _, n := range []string{"node-a", "node-b"} {
		if ambient(mode) && n != "node-b" {
			continue
		}
		text, err := b.m.Metrics(n)
		if err != nil {
			return 0, fmt.Errorf("verify %s: %w", mode, err)
		}
		var match map[string]string
		if ambient(mode) {
			match = map[string]string{"reporter": "destination", "connection_security_policy": "mutual_tls",
				"destination_workload_namespace": mode}
		}
		v, err := measure.CounterSum(text, "istio_tcp_connections_opened_total", match)
		if err != nil {
			return 0, fmt.Errorf("verify %s: %w", mode, err)
		}
		total += v
	}
	return total, nil
}
