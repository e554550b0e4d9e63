package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// testCerts issues real certificates from a throwaway CA.
type testCerts struct {
	t    *testing.T
	ca   *ca.Authority
	mu   sync.Mutex
	byID map[spiffe.Identity]*tls.Certificate
}

func newTestCerts(t *testing.T) *testCerts {
	a, err := ca.LoadOrCreate(t.TempDir(), spiffe.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return &testCerts{t: t, ca: a, byID: map[spiffe.Identity]*tls.Certificate{}}
}

func (c *testCerts) TLSCertificate(_ context.Context, id spiffe.Identity) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert := c.byID[id]; cert != nil {
		return cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*neturl.URL{id.URL()}}, key)
	if err != nil {
		return nil, err
	}
	chain, err := c.ca.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, time.Hour)
	if err != nil {
		return nil, err
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(strings.Join(chain, "")), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return nil, err
	}
	c.byID[id] = &cert
	return &cert, nil
}

func (c *testCerts) Roots() *x509.CertPool { return c.ca.Roots() }

// loopNetns stands in for a pod network namespace: it dials on loopback and records the
// source each app delivery asked for. Deliveries to plainApp's key go to its value: on
// loopback a plaintext connection's original destination is the inbound listener itself.
type loopNetns struct {
	mu       sync.Mutex
	srcs     []netip.Addr
	plainApp map[netip.AddrPort]netip.AddrPort
}

func (n *loopNetns) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.String())
}

func (n *loopNetns) DialApp(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	n.mu.Lock()
	n.srcs = append(n.srcs, src)
	if to, ok := n.plainApp[dst]; ok {
		dst = to
	}
	n.mu.Unlock()
	return n.Dial(ctx, dst)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// echoApp is the pod's app: it echoes until EOF.
func echoApp(t *testing.T) netip.AddrPort {
	l := listen(t)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

type fixture struct {
	certs    *testCerts
	netns    *loopNetns
	reg      *prometheus.Registry
	store    *state.Store
	hboneL   net.Listener
	inboundL net.Listener
	server   spiffe.Identity
}

// podWorkload is the served pod as WDS describes it: inbound policy needs it.
const podWorkloadUID = "cluster//Pod/demo/server-0"

func startProxy(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{certs: newTestCerts(t), netns: &loopNetns{plainApp: map[netip.AddrPort]netip.AddrPort{}},
		reg: prometheus.NewRegistry(), store: state.New(),
		server: spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "server"}}
	f.applyAddress(t, &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: podWorkloadUID, Name: "server-0", Namespace: "demo", ServiceAccount: "server",
		Addresses: [][]byte{{127, 0, 0, 1}}, TunnelProtocol: workloadapi.TunnelProtocol_HBONE,
	}}})
	cfg := Config{Store: f.store, Router: &Router{Store: f.store}, Certs: f.certs, Metrics: metrics.New(f.reg),
		TrustDomain: "cluster.local", Logger: slog.New(slog.DiscardHandler)}
	pod := Pod{UID: "u1", Name: "server-0", Namespace: "demo", Identity: f.server,
		IP: netip.MustParseAddr("127.0.0.1"), Netns: f.netns}
	f.hboneL, f.inboundL = listen(t), listen(t)
	ls := Listeners{Outbound: listen(t), Inbound: f.inboundL, HBONE: f.hboneL}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, pod).Run(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy run: %v", err)
		}
	})
	return f
}

func (f *fixture) client(id spiffe.Identity) *hbone.Client {
	return hbone.NewClient(hbone.ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return f.certs.TLSCertificate(context.Background(), id) },
		Roots:                f.certs.Roots, TrustDomain: "cluster.local",
	})
}

func TestInboundHBONEDeliversWithClientSource(t *testing.T) {
	f := startProxy(t)
	app := echoApp(t)
	clientID := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	cl := f.client(clientID)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cl.Dial(ctx, hbone.Request{Address: f.hboneL.Addr().String(), Authority: app.String(), Identities: []spiffe.Identity{f.server}})
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("ambit", 1000)
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	conn.CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != msg {
		t.Fatalf("echo = %d bytes, %v", len(got), err)
	}
	conn.Close()
	f.netns.mu.Lock()
	srcs := append([]netip.Addr(nil), f.netns.srcs...)
	f.netns.mu.Unlock()
	if len(srcs) != 1 || srcs[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("app delivery sources = %v, want the tunnel peer 127.0.0.1", srcs)
	}
	waitCounter(t, f.reg, "istio_tcp_connections_closed_total", map[string]string{
		"reporter": "destination", "connection_security_policy": "mutual_tls",
		"source_principal": clientID.String(), "destination_principal": f.server.String(),
	}, 1)
	waitCounter(t, f.reg, "istio_tcp_received_bytes_total", map[string]string{"reporter": "destination"}, float64(len(msg)))
}

func TestInboundHBONERejectsForeignAuthority(t *testing.T) {
	f := startProxy(t)
	cl := f.client(spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, authority := range []string{"10.1.2.3:8080", "127.0.0.1:15008"} {
		_, err := cl.Dial(ctx, hbone.Request{Address: f.hboneL.Addr().String(), Authority: authority, Identities: []spiffe.Identity{f.server}})
		var se *hbone.StatusError
		if !errors.As(err, &se) || se.Code != 400 {
			t.Errorf("authority %s: err = %v, want status 400", authority, err)
		}
	}
	if n := gather(t, f.reg, "istio_tcp_connections_opened_total", nil); n != 0 {
		t.Fatalf("refused streams counted as %v opened connections", n)
	}
}

// gather sums the counter family's series whose labels include want.
func gather(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	series:
		for _, m := range fam.Metric {
			labels := map[string]string{}
			for _, lp := range m.Label {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// waitCounter polls until the counter reaches want: the proxy records a stream's close
// after the client has already seen its end.
func waitCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gather(t, reg, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
