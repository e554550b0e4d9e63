package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// ztunnelServiceAccount is the trusted node account allowed to ask the CA for pods'
// certificates (Istio's default).
const ztunnelServiceAccount = wire.DefaultZtunnelNamespace + "/" + wire.DefaultZtunnelAccount

// Bin is the path of a built binary.
func (m *Mesh) Bin(name string) string { return filepath.Join(m.opts.Bin, name) }

// startIstiod writes one CA token per node (bound to that node, as a projected
// ServiceAccount token would be) and starts istiod-lite in the fabric namespace.
func (m *Mesh) startIstiod(ctx context.Context) error {
	var lines []string
	for _, name := range m.opts.Nodes {
		tok := randomToken()
		lines = append(lines, fmt.Sprintf("%s %s node=%s", tok, ztunnelServiceAccount, name))
		dir := m.path(name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("start istiod-lite: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("start istiod-lite: %w", err)
		}
	}
	wl, err := m.waypointTokens()
	if err != nil {
		return fmt.Errorf("start istiod-lite: %w", err)
	}
	lines = append(lines, wl...)
	if err := os.WriteFile(m.path("tokens"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("start istiod-lite: %w", err)
	}
	ip := m.Cluster.BridgeIP.String()
	p, err := m.Cluster.StartFabric(ctx, m.LogPath("istiod-lite"), m.Bin("istiod-lite"),
		"--config-dir", m.path("config"), "--ca-dir", m.path("ca"),
		"--grpc-addr", fmt.Sprintf("%s:%d", ip, wire.PortXDSTLS),
		"--monitoring-addr", fmt.Sprintf("%s:%d", ip, wire.PortMonitoring),
		"--tokens-file", m.path("tokens"))
	if err != nil {
		return fmt.Errorf("start istiod-lite: %w", err)
	}
	m.Istiod = p
	return nil
}

// startNode starts the node agent and the ztunnel of one node.
func (m *Mesh) startNode(ctx context.Context, name string) error {
	cn, err := m.Cluster.AddNode(name)
	if err != nil {
		return fmt.Errorf("start node %s: %w", name, err)
	}
	n := &Node{Node: cn, Dir: m.path(name)}
	n.zdsSock = filepath.Join(n.Dir, "ztunnel.sock")
	n.cniSock = filepath.Join(n.Dir, "cni.sock")
	m.Nodes[name] = n
	n.Agent, err = cn.Start(ctx, m.LogPath(name+"-agent"), m.Bin("ambit-cni-agent"),
		"--node-name", name, "--config-dir", m.path("config"),
		"--zds-socket", n.zdsSock, "--cni-socket", n.cniSock,
		"--bpf-pin-dir", filepath.Join(m.bpfDir, name), "--cgroup-root", m.Cluster.CgroupRoot,
		"--state-dir", filepath.Join(n.Dir, "state"))
	if err != nil {
		return fmt.Errorf("start node agent %s: %w", name, err)
	}
	n.ztunnelArgv = append([]string{
		m.Bin("ztunnel"),
		"--node-name", name,
		"--xds-address", fmt.Sprintf("%s:%d", m.Cluster.BridgeIP, wire.PortXDSTLS),
		"--root-cert", m.path("ca", "root-cert.pem"),
		"--token-file", filepath.Join(n.Dir, "token"),
		"--zds-socket", n.zdsSock,
	}, m.opts.ZtunnelArgs...)
	n.Ztunnel, err = cn.Start(ctx, m.LogPath(name+"-ztunnel"), n.ztunnelArgv...)
	if err != nil {
		return fmt.Errorf("start ztunnel %s: %w", name, err)
	}
	return nil
}

// RestartZtunnel stops the node's ztunnel (SIGTERM) and starts a new one with the same
// flags, as a DaemonSet rollout would, then waits until it is ready. The node agent keeps
// enrolment meanwhile and replays it to the new ztunnel over ZDS.
func (m *Mesh) RestartZtunnel(ctx context.Context, node string) error {
	n := m.Nodes[node]
	if n == nil {
		return fmt.Errorf("restart ztunnel: unknown node %q", node)
	}
	if err := n.Ztunnel.Stop(); err != nil {
		return fmt.Errorf("restart ztunnel %s: %w", node, err)
	}
	p, err := n.Start(ctx, m.LogPath(node+"-ztunnel"), n.ztunnelArgv...)
	if err != nil {
		return fmt.Errorf("restart ztunnel %s: %w", node, err)
	}
	n.Ztunnel = p
	return m.waitReady(ctx, n)
}

// waitReady polls the ztunnel's readiness endpoint and the agent's sockets.
func (m *Mesh) waitReady(ctx context.Context, n *Node) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", wire.PortReadiness)
	return Poll(ctx, 30*time.Second, func() error {
		for _, p := range []*cluster.Process{m.Istiod, n.Agent, n.Ztunnel} {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %v (log %s)", p.Argv[0], p.Err(), p.LogPath)
			default:
			}
		}
		if _, err := os.Stat(n.cniSock); err != nil {
			return fmt.Errorf("node agent %s not listening: %w", n.Name, err)
		}
		if _, err := cluster.HTTPGet(n.NetnsPath, url); err != nil {
			return fmt.Errorf("ztunnel %s not ready: %w", n.Name, err)
		}
		return nil
	})
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
