package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/mesh"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// The mesh of TestPrivilegedIstioClientThroughZtunnel: an ambient echo server on node-b
// and, on node-a, a pod outside the mesh that runs Istio's HBONE client itself.
const (
	serverNode, clientNode = "node-b", "node-a"
	echoHTTPPort           = 8080
	requestBody            = "hello from istio's hbone client"
	meshTimeout            = 3 * time.Minute
)

// istioClientID is the identity of the Istio client pod's certificate.
var istioClientID = spiffe.Identity{TrustDomain: trustDomain, Namespace: "istio", ServiceAccount: "istio-client"}

// echoReply is the part of ambit-echo's JSON answer (e2e/echo.Reply) the test reads.
type echoReply struct {
	Pod    string `json:"pod"`
	Peer   string `json:"peer"`
	Bytes  int64  `json:"bytes"`
	Method string `json:"method"`
}

// TestPrivilegedIstioClientThroughZtunnel: Istio's own Go HBONE client
// (istio.io/istio/pkg/hbone), run in a pod outside the mesh with a certificate issued by
// Ambit's CA, dials an ambient pod's HBONE port directly; Ambit's ztunnel terminates the
// tunnel, delivers the request to the app from the client pod's IP, and counts the
// connection as mutual TLS from the client's SPIFFE identity. The same client holding a
// certificate from a different CA is refused and never reaches the app.
func TestPrivilegedIstioClientThroughZtunnel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds a local mesh in network namespaces and cgroups (run as root: make test-interop)")
	}
	bin := meshBinaries(t)
	dialer := buildDialer(t)

	ctx, cancel := context.WithTimeout(context.Background(), meshTimeout)
	t.Cleanup(cancel)
	m, err := mesh.Start(ctx, mesh.Options{Name: "ambit-interop", Bin: bin, Nodes: []string{clientNode, serverNode}})
	if err != nil {
		if m != nil {
			_ = m.RemoveWorkDir()
		}
		t.Fatalf("start mesh: %v", err)
	}
	t.Cleanup(func() {
		closeMesh(t, m, []string{"istiod-lite", serverNode + "-agent", serverNode + "-ztunnel",
			clientNode + "-agent", clientNode + "-ztunnel", "app-demo-server-0"})
	})
	server, client := deployIstioClientApp(ctx, t, m)

	run := func(t *testing.T, files identityFiles) ([]byte, error) {
		t.Helper()
		return client.Run(ctx, dialer,
			"--proxy", netip.AddrPortFrom(server.IP, wire.PortHBONE).String(),
			"--target", netip.AddrPortFrom(server.IP, echoHTTPPort).String(),
			"--cert", files.cert, "--key", files.key, "--root", files.root,
			"--send", requestBody, "--timeout", "20s")
	}
	opened := map[string]string{
		"reporter":                   "destination",
		"connection_security_policy": "mutual_tls",
		"source_principal":           istioClientID.String(),
	}
	const family = "istio_tcp_connections_opened_total"

	t.Run("mesh certificate", func(t *testing.T) {
		out, err := run(t, writeIdentity(t, m.CA, istioClientID, m.CA.RootPEM()))
		if err != nil {
			t.Fatalf("istio-hbone-dial from %s: %v\nstdout:\n%s", client, err, out)
		}
		reply := decodeEchoReply(t, out)
		t.Logf("server-0 answered through ztunnel: %+v", reply)
		if reply.Pod != "server-0" || reply.Method != http.MethodPost || reply.Bytes != int64(len(requestBody)) {
			t.Errorf("echo reply %+v, want pod server-0 answering a POST of %d bytes", reply, len(requestBody))
		}
		if host, _, err := net.SplitHostPort(reply.Peer); err != nil || host != client.IP.String() {
			t.Errorf("echo server saw peer %q, want the istio-client pod IP %s", reply.Peer, client.IP)
		}
		err = pollUntil(ctx, func() error {
			sum, n, err := serverCounter(m, family, opened)
			if err == nil && sum < 1 {
				err = fmt.Errorf("no %s series with %v yet", family, opened)
			}
			if err == nil {
				t.Logf("%s on %s: %v over %d series with %v", family, serverNode, sum, n, opened)
			}
			return err
		})
		if err != nil {
			t.Errorf("ztunnel metrics on %s: %v", serverNode, err)
		}
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		before, _, err := serverCounter(m, family, opened)
		if err != nil {
			t.Fatalf("ztunnel metrics on %s: %v", serverNode, err)
		}
		foreign := newAuthority(t) // same trust domain, different root
		out, err := run(t, writeIdentity(t, foreign, istioClientID, m.CA.RootPEM()))
		if err == nil {
			t.Fatalf("istio-hbone-dial with a foreign certificate succeeded, want a refusal\nstdout:\n%s", out)
		}
		if bytes.Contains(out, []byte("HTTP/1.1")) {
			t.Errorf("refused client still got an answer from the app:\n%s", out)
		}
		t.Logf("refused as expected: %v", err)
		after, _, err := serverCounter(m, family, opened)
		if err != nil {
			t.Fatalf("ztunnel metrics on %s: %v", serverNode, err)
		}
		if after != before {
			t.Errorf("%s for %s went from %v to %v: the refused client reached the app", family, istioClientID, before, after)
		}
	})
}

// deployIstioClientApp writes the config and creates the pods: demo/server-0 (ambient,
// ambit-echo) on node-b and istio/istio-client (namespace outside the mesh) on node-a.
// It returns once server-0 is served by its ztunnel, holds its certificate and listens.
func deployIstioClientApp(ctx context.Context, t *testing.T, m *mesh.Mesh) (server, client *cluster.Pod) {
	t.Helper()
	c := m.Config
	for _, err := range []error{
		c.Namespace("demo", true), c.Namespace(istioClientID.Namespace, false),
		c.ServiceAccount("demo", "server"), c.ServiceAccount(istioClientID.Namespace, istioClientID.ServiceAccount),
	} {
		if err != nil {
			t.Fatalf("write mesh config: %v", err)
		}
	}
	server, err := m.AddPod(ctx, mesh.PodSpec{
		Node: serverNode, Namespace: "demo", Name: "server-0", ServiceAccount: "server",
		Labels: map[string]string{"app": "server"},
		Ports:  []corev1.ContainerPort{{Name: "http", ContainerPort: echoHTTPPort}},
	})
	if err != nil {
		t.Fatalf("add server pod: %v", err)
	}
	if _, err := server.Start(ctx, m.LogPath("app-demo-server-0"), m.Bin("ambit-echo"), "server", "--name", "server-0", "--tcp", ""); err != nil {
		t.Fatalf("start echo server: %v", err)
	}
	client, err = m.AddPod(ctx, mesh.PodSpec{
		Node: clientNode, Namespace: istioClientID.Namespace, Name: "istio-client",
		ServiceAccount: istioClientID.ServiceAccount, Labels: map[string]string{"app": "istio-client"},
	})
	if err != nil {
		t.Fatalf("add client pod: %v", err)
	}
	if err := m.WaitEnrolled(ctx, server); err != nil {
		t.Fatalf("server pod enrolment: %v", err)
	}
	serverID := spiffe.Identity{TrustDomain: trustDomain, Namespace: "demo", ServiceAccount: "server"}.String()
	err = pollUntil(ctx, func() error {
		d, err := m.ConfigDump(serverNode)
		if err != nil {
			return err
		}
		for _, cert := range d.Certificates {
			if cert.Identity == serverID {
				return nil
			}
		}
		return fmt.Errorf("ztunnel on %s holds no certificate for %s yet", serverNode, serverID)
	})
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	// A probe from the node, as kubelet's: not captured, not tunnelled.
	err = pollUntil(ctx, func() error {
		conn, err := server.Node.Dial(ctx, "tcp", netip.AddrPortFrom(server.IP, echoHTTPPort).String())
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		t.Fatalf("echo server in %s not listening: %v", server, err)
	}
	return server, client
}

// serverCounter sums a counter family over the series of the server node's ztunnel
// metrics that carry the labels in match.
func serverCounter(m *mesh.Mesh, family string, match map[string]string) (float64, int, error) {
	text, err := m.Metrics(serverNode)
	if err != nil {
		return 0, 0, fmt.Errorf("read metrics: %w", err)
	}
	return counterSum(text, family, match)
}

// decodeEchoReply parses istio-hbone-dial's output: one HTTP/1.1 response, status 200,
// with ambit-echo's JSON body.
func decodeEchoReply(t *testing.T, out []byte) echoReply {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("parse response %q: %v", out, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response status %s, want 200 OK\n%s", resp.Status, out)
	}
	var r echoReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode echo reply %q: %v", out, err)
	}
	return r
}

// pollUntil polls cond with the test's I/O timeout (see mesh.Poll).
func pollUntil(ctx context.Context, cond func() error) error {
	return mesh.Poll(ctx, ioTimeout, cond)
}
