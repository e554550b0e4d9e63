package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

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
	ztunnels map[string]proxy // by node
	pairs    map[benchCase]*pair
	profiled map[benchCase]bool // cases whose proxies were profiled (--profile)
}

// proxy is a process whose CPU and memory a mode accounts: a ztunnel or a forwarder.
type proxy struct {
	name string
	pid  int
}

// pair is one case's client (node-a) and server (node-b cross-node, node-a
// same-node), and how the load generators reach the server.
type pair struct {
	client, server *cluster.Pod
	// target is the address the load generators connect to: the server's Service VIP
	// (ambient modes), the server pod (direct), or 127.0.0.1 where a client forwarder
	// listens.
	target netip.Addr
	// proxies carry the case's bytes (both ztunnels for direct: off the path).
	proxies []proxy
	// waypoint serves the server's Service (l7), else nil.
	waypoint *mesh.Waypoint
}

func (p *pair) url() string {
	return "http://" + netip.AddrPortFrom(p.target, fortioPort).String() + "/echo"
}

// deploy creates one namespace per case (enrolled for ambient modes), its two pods,
// the servers and the mode's forwarders, and waits until the ambient pods are enrolled
// and everything listens.
func (b *bench) deploy(ctx context.Context, todo []benchCase) error {
	b.pairs = map[benchCase]*pair{}
	for _, bc := range todo {
		p, err := b.deployCase(ctx, bc)
		if err != nil {
			return fmt.Errorf("deploy %s: %w", bc, err)
		}
		b.pairs[bc] = p
	}
	for _, bc := range todo {
		if !spec(bc.mode).ambient {
			continue
		}
		for _, pod := range []*cluster.Pod{b.pairs[bc].client, b.pairs[bc].server} {
			if err := b.m.WaitEnrolled(ctx, pod); err != nil {
				return fmt.Errorf("deploy %s: %w", bc, err)
			}
		}
	}
	if err := b.m.WaitWorkloads(ctx, 2*len(todo)); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	for _, bc := range todo {
		if w := b.pairs[bc].waypoint; w != nil {
			for _, port := range []int{fortioPort, iperfPort} {
				if err := b.m.WaitServing(ctx, w, serverService, port); err != nil {
					return fmt.Errorf("deploy %s: %w", bc, err)
				}
			}
		}
	}
	for _, bc := range todo {
		p := b.pairs[bc]
		if err := waitListening(ctx, p.server, append([]int{iperfPort, fortioPort}, serverForwarderPorts(bc.mode)...)...); err != nil {
			return fmt.Errorf("deploy %s: %w", bc, err)
		}
		if spec(bc.mode).forwarder != "" {
			if err := waitListening(ctx, p.client, iperfPort, fortioPort); err != nil {
				return fmt.Errorf("deploy %s: client forwarder: %w", bc, err)
			}
		}
	}
	return nil
}

// deployCase creates the case's namespace, service accounts and pods, starts the
// servers and the forwarders, and names the processes on the path.
func (b *bench) deployCase(ctx context.Context, bc benchCase) (*pair, error) {
	ns, s := bc.namespace(), spec(bc.mode)
	cfg := b.m.Config
	for _, err := range []error{cfg.Namespace(ns, s.ambient), cfg.ServiceAccount(ns, "client"), cfg.ServiceAccount(ns, "server")} {
		if err != nil {
			return nil, err
		}
	}
	p := &pair{}
	var err error
	if p.client, err = b.m.AddPod(ctx, mesh.PodSpec{Node: clientNode, Namespace: ns, Name: "client", ServiceAccount: "client",
		Labels: map[string]string{"app": "client"}}); err != nil {
		return nil, err
	}
	ports := []corev1.ContainerPort{{Name: "iperf3", ContainerPort: iperfPort}, {Name: "http", ContainerPort: fortioPort}}
	if p.server, err = b.m.AddPod(ctx, mesh.PodSpec{Node: bc.serverNode(), Namespace: ns, Name: "server", ServiceAccount: "server",
		Labels: map[string]string{"app": "server"}, Ports: ports}); err != nil {
		return nil, err
	}
	if err := b.startServers(ctx, bc, p.server); err != nil {
		return nil, err
	}
	p.target, p.proxies = p.server.IP, b.pathZtunnels(bc)
	if s.ambient {
		if p.target, err = b.serverService(bc); err != nil {
			return nil, err
		}
	}
	if s.waypoint {
		if p.waypoint, err = b.m.AddWaypoint(ctx, bc.serverNode(), ns, waypointName); err != nil {
			return nil, err
		}
		p.proxies = append(p.proxies, proxy{"waypoint (" + bc.serverNode() + ")", p.waypoint.Process.Pid})
	}
	if s.forwarder != "" {
		if err := b.startForwarders(ctx, bc, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// pathZtunnels are the ztunnels a case accounts: for an ambient mode those of the
// client's and the server's node (one for same-node, which carries both ends), for
// the others both (off the path: their figures are the idle background).
func (b *bench) pathZtunnels(bc benchCase) []proxy {
	var out []proxy
	for _, n := range ztunnelNodes {
		if !spec(bc.mode).ambient || n == clientNode || n == bc.serverNode() {
			out = append(out, b.ztunnels[n])
		}
	}
	return out
}

// startServers runs iperf3 and fortio's HTTP echo server (every other fortio listener
// and its UI off) in the server pod.
func (b *bench) startServers(ctx context.Context, bc benchCase, pod *cluster.Pod) error {
	servers := [][]string{
		{b.cfg.iperf3, "-s", "-p", fmt.Sprint(iperfPort)},
		{b.cfg.fortio, "server", "-http-port", fmt.Sprint(fortioPort), "-grpc-port", "disabled", "-redirect-port", "disabled",
			"-tcp-port", "disabled", "-udp-port", "disabled", "-ui-path", "", "-loglevel", "Warning"},
	}
	for _, argv := range servers {
		name := "server-" + bc.namespace() + "-" + argv[0][strings.LastIndexByte(argv[0], '/')+1:]
		if _, err := pod.Start(ctx, b.m.LogPath(name), argv...); err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
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
