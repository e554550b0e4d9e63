package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/e2e/capture"
	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/e2e/mesh"
)

// The sample app: namespace demo (ambient) with a client and a two-replica server
// Service; namespace legacy (not in the mesh) with one pod that is both a client and a
// server.
const (
	serverVIP   = "10.96.0.10"
	markerMesh  = "AMBIT-MESH-SECRET-7f3a91" // sent only by ambient pods to ambient pods
	markerPlain = "AMBIT-LEGACY-PLAINTEXT-c2d4"
	markerPass  = "AMBIT-PASSTHROUGH-5e8b"
	vipRequests = 10
)

type app struct {
	client, server0, server1, legacy *cluster.Pod
}

func deploy(ctx context.Context, m *mesh.Mesh) (*app, error) {
	c := m.Config
	steps := []error{
		c.Namespace("demo", true), c.Namespace("legacy", false),
		c.ServiceAccount("demo", "client"), c.ServiceAccount("demo", "server"), c.ServiceAccount("legacy", "default"),
		c.Service("demo", "server", serverVIP, map[string]string{"app": "server"},
			mesh.ServicePort{Name: "http", Port: 80, TargetPort: 8080}, mesh.ServicePort{Name: "tcp", Port: 9000, TargetPort: 9000}),
	}
	for _, err := range steps {
		if err != nil {
			return nil, err
		}
	}
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "tcp", ContainerPort: 9000}}
	specs := []mesh.PodSpec{
		{Node: "node-a", Namespace: "demo", Name: "client", ServiceAccount: "client", Labels: map[string]string{"app": "client"}},
		{Node: "node-a", Namespace: "demo", Name: "server-0", ServiceAccount: "server", Labels: map[string]string{"app": "server", "version": "v1"}, Ports: ports},
		{Node: "node-b", Namespace: "demo", Name: "server-1", ServiceAccount: "server", Labels: map[string]string{"app": "server", "version": "v1"}, Ports: ports},
		{Node: "node-b", Namespace: "legacy", Name: "legacy", ServiceAccount: "default", Labels: map[string]string{"app": "legacy"}, Ports: ports},
	}
	pods := make([]*cluster.Pod, len(specs))
	for i, s := range specs {
		p, err := m.AddPod(ctx, s)
		if err != nil {
			return nil, err
		}
		pods[i] = p
		if s.Name != "client" {
			if _, err := p.Start(ctx, m.LogPath("app-"+s.Namespace+"-"+s.Name), echoBin(m), "server", "--name", s.Name); err != nil {
				return nil, fmt.Errorf("start app %s: %w", s.Name, err)
			}
		}
	}
	a := &app{client: pods[0], server0: pods[1], server1: pods[2], legacy: pods[3]}
	for _, p := range []*cluster.Pod{a.client, a.server0, a.server1} {
		if err := m.WaitEnrolled(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := m.WaitWorkloads(ctx, 4); err != nil {
		return nil, err
	}
	for _, p := range []*cluster.Pod{a.server0, a.server1, a.legacy} {
		if err := waitListening(ctx, p); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func echoBin(m *mesh.Mesh) string { return m.Bin("ambit-echo") }

// waitListening polls the app from its node (a probe-like connection, not captured).
func waitListening(ctx context.Context, p *cluster.Pod) error {
	return mesh.Poll(ctx, 20*time.Second, func() error {
		c, err := p.Node.Dial(ctx, "tcp", netip.AddrPortFrom(p.IP, 8080).String())
		if err != nil {
			return fmt.Errorf("app in %s/%s not listening: %w", p.Namespace, p.Name, err)
		}
		return c.Close()
	})
}

// runScenario deploys the app, sends the traffic with a capture running on the fabric
// bridge, and gathers everything the report checks.
func runScenario(ctx context.Context, m *mesh.Mesh) (*Report, error) {
	a, err := deploy(ctx, m)
	if err != nil {
		return nil, err
	}
	// Every cross-node flow of the scenario touches node-a: capture its link to the
	// fabric (a bridge port; the bridge device itself does not see forwarded frames).
	capt, err := capture.Start(m.Nodes["node-a"].NetnsPath, "eth0")
	if err != nil {
		return nil, err
	}
	r := &Report{RunID: m.Cluster.RunID, app: a}
	r.CrossNode, err = tcpFlow(ctx, m, a.client, netip.AddrPortFrom(a.server1.IP, 9000).String(), 1, markerMesh)
	if err == nil {
		r.VIPHTTP, err = httpFlow(ctx, m, a.client, "http://"+serverVIP+"/", vipRequests, markerMesh)
	}
	if err == nil {
		r.VIPTCP, err = tcpFlow(ctx, m, a.client, serverVIP+":9000", 4, markerMesh)
	}
	if err == nil {
		r.Permissive, err = httpFlow(ctx, m, a.legacy, fmt.Sprintf("http://%s:8080/", a.server0.IP), 2, markerPlain)
	}
	if err == nil {
		r.Passthrough, err = httpFlow(ctx, m, a.client, fmt.Sprintf("http://%s:8080/", a.legacy.IP), 2, markerPass)
	}
	sum, cerr := capt.Stop()
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	r.Capture = sum
	netns := []string{m.Cluster.FabricNetns}
	for _, n := range m.Nodes {
		netns = append(netns, n.NetnsPath)
	}
	for _, p := range []*cluster.Pod{a.client, a.server0, a.server1, a.legacy} {
		netns = append(netns, p.NetnsPath)
	}
	r.Namespaces = len(netns)
	r.FilterErr = capture.NoPacketFilterRules(netns...)
	for _, node := range []string{"node-a", "node-b"} {
		text, err := m.Metrics(node)
		if err != nil {
			return nil, err
		}
		if err := r.addMetrics(text); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func httpFlow(ctx context.Context, m *mesh.Mesh, from *cluster.Pod, url string, n int, body string) ([]echo.HTTPResult, error) {
	out, err := from.Run(ctx, echoBin(m), "http", "--url", url, "--count", fmt.Sprint(n), "--body", body)
	res, perr := decodeLines[echo.HTTPResult](out)
	if perr != nil {
		return nil, fmt.Errorf("http from %s to %s: %w (run: %v)", from.Name, url, perr, err)
	}
	return res, nil
}

func tcpFlow(ctx context.Context, m *mesh.Mesh, from *cluster.Pod, addr string, n int, payload string) ([]echo.TCPResult, error) {
	out, err := from.Run(ctx, echoBin(m), "tcp", "--addr", addr, "--count", fmt.Sprint(n), "--payload", payload)
	res, perr := decodeLines[echo.TCPResult](out)
	if perr != nil {
		return nil, fmt.Errorf("tcp from %s to %s: %w (run: %v)", from.Name, addr, perr, err)
	}
	return res, nil
}

// decodeLines parses one JSON object per line. A client that failed still prints its
// results (with errors), so the report can say what went wrong.
func decodeLines[T any](out []byte) ([]T, error) {
	var res []T
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("decode %q: %w", line, err)
		}
		res = append(res, v)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no results in output %q", out)
	}
	return res, nil
}
