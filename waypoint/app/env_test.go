package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
	"github.com/ambitmesh/ambit/waypoint/xds"
)

var (
	waypointID = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "waypoint"}
	clientID   = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "sleep"}
)

const nodeID = "router~10.0.0.2~waypoint-abc.demo~demo.svc.cluster.local"

// env is a running waypoint with a fake control plane, two backends and a client.
type env struct {
	ca        *envoytest.CA
	cache     cachev3.SnapshotCache
	version   atomic.Int64
	nacks     chan string
	backends  map[string]*backend
	addrs     map[string]net.Addr
	client    *http.Client
	accessLog *lockedBuffer
	hbone     *hbone.Client
	resources func(services ...envoytest.Service) *config.Resources
}

func newEnv(t testing.TB, services ...envoytest.Service) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	ca, err := envoytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ca: ca, nacks: make(chan string, 16), backends: map[string]*backend{}, addrs: map[string]net.Addr{}, accessLog: &lockedBuffer{}}
	wpLeaf := mustIssue(t, ca, waypointID)
	e.resources = func(services ...envoytest.Service) *config.Resources {
		return envoytest.Resources("cluster.local", wpLeaf.CertPEM, wpLeaf.KeyPEM, ca.PEM, services...)
	}
	// v1 and v2 also stand for the pods of istiod-lite's golden configurations.
	for _, b := range []*backend{
		{name: "v1", ips: []string{"127.0.0.11", "10.244.1.11", "10.244.1.5"}},
		{name: "v2", ips: []string{"127.0.0.12", "10.244.2.12", "10.244.2.6"}},
	} {
		e.startBackend(ctx, t, &wg, b)
	}

	// Fake istiod-lite: go-control-plane's ADS server over a snapshot cache.
	e.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	cb := serverv3.CallbackFuncs{StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
		if req.GetErrorDetail() != nil {
			select {
			case e.nacks <- req.GetErrorDetail().GetMessage():
			default:
			}
		}
		return nil
	}}
	xsrv := serverv3.NewServer(ctx, e.cache, cb)
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xsrv)
	xln := listen(t, "127.0.0.1:0")
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(xln)
	}()
	t.Cleanup(gs.Stop)
	if len(services) > 0 {
		e.push(t, e.resources(services...))
	}

	var mu sync.Mutex
	cfg := Config{
		XDSAddress: xln.Addr().String(), TrustDomain: "cluster.local",
		AdminAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", ReadinessAddr: "127.0.0.1:0", HBONEAddr: "127.0.0.1:0",
		Node:      nodeInfo(),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		AccessLog: e.accessLog,
		dialTunnel: func(ctx context.Context, network, addr string) (net.Conn, error) {
			for _, b := range e.backends {
				if slices.Contains(b.ips, strings.TrimSuffix(addr, ":15008")) {
					var d net.Dialer
					return d.DialContext(ctx, network, b.hboneLn.Addr().String())
				}
			}
			return nil, fmt.Errorf("test dial: unknown tunnel address %s", addr)
		},
		onListen: func(name string, a net.Addr) {
			mu.Lock()
			e.addrs[name] = a
			mu.Unlock()
		},
	}
	runErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Goroutines inherit profiler labels: -tagfocus=component=waypoint keeps the
		// waypoint's share of a CPU profile (client and backends are unlabelled).
		pprof.Do(ctx, pprof.Labels("component", "waypoint"), func(ctx context.Context) {
			runErr <- Run(ctx, cfg)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "waypoint listening", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return e.addrs["hbone"] != nil
	})
	if len(services) > 0 {
		e.waitReady(t)
	}
	e.startClient(t)
	return e
}

// ready fetches /healthz/ready and returns its status.
func (e *env) ready(t testing.TB) int {
	t.Helper()
	resp, err := http.Get("http://" + e.addrs["readiness"].String() + "/healthz/ready")
	if err != nil {
		t.Fatalf("readiness: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) waitReady(t testing.TB) {
	t.Helper()
	waitFor(t, 10*time.Second, "waypoint ready", func() bool { return e.ready(t) == http.StatusOK })
}

func nodeInfo() xds.NodeInfo {
	return xds.NodeInfo{PodName: "waypoint-abc", PodNamespace: "demo", InstanceIP: "10.0.0.2",
		ServiceAccount: "waypoint", GatewayName: "waypoint"}
}

func mustIssue(t testing.TB, ca *envoytest.CA, id spiffe.Identity) *envoytest.Leaf {
	t.Helper()
	l, err := ca.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// startClient builds an HTTP client that reaches services through the waypoint as
// ztunnel does: one HBONE CONNECT per connection with the service VIP as authority.
func (e *env) startClient(t testing.TB) {
	t.Helper()
	e.hbone, e.client = e.newClient(t, clientID)
}

// newClient builds an HBONE client with identity id and an HTTP client over it.
func (e *env) newClient(t testing.TB, id spiffe.Identity) (*hbone.Client, *http.Client) {
	t.Helper()
	leaf := mustIssue(t, e.ca, id)
	hc := hbone.NewClient(hbone.ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return leaf.TLS, nil },
		Roots:                func() *x509.CertPool { return e.ca.Pool },
		TrustDomain:          "cluster.local",
	})
	t.Cleanup(func() { hc.Close() })
	baggage := "k8s.namespace.name=" + id.Namespace + ",k8s.deployment.name=" + id.ServiceAccount
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return hc.Dial(ctx, hbone.Request{
				Address: e.addrs["hbone"].String(), Authority: vipFor(addr), Identities: []spiffe.Identity{waypointID},
				Header: http.Header{"Baggage": {baggage}},
			})
		},
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return hc, &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// vipFor maps the test host names to service VIPs (the client's DNS).
func vipFor(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if strings.HasPrefix(host, "reviews.") {
		return "10.96.0.10:" + port
	}
	switch host {
	case reviewsFQDN:
		return "10.96.0.10:" + port
	case dbFQDN:
		return "10.96.0.11:" + port
	case ratingsFQDN:
		return "10.96.0.12:" + port
	}
	return addr
}

// push serves res as the next snapshot version.
func (e *env) push(t testing.TB, res *config.Resources) {
	t.Helper()
	snap, err := envoytest.Snapshot(fmt.Sprint(e.version.Add(1)), res)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends one request and returns status, body and the X-Backend header.
func (e *env) do(t testing.TB, method, url string, hdr http.Header) (int, string, string) {
	t.Helper()
	code, body, h := e.doH(t, method, url, hdr)
	return code, body, h.Get("X-Backend")
}

// doH sends one request and returns status, body and response header.
func (e *env) doH(t testing.TB, method, url string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// lockedBuffer is an access log sink safe to read while the waypoint writes; with
// discard set (benchmarks) it keeps nothing.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	discard bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.discard {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// goGet sends a GET in the background and delivers its status (0 on error).
func (e *env) goGet(url string) <-chan int {
	ch := make(chan int, 1)
	go func() {
		resp, err := e.client.Get(url)
		if err != nil {
			ch <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ch <- resp.StatusCode
	}()
	return ch
}

// get fetches path from one of the waypoint's local endpoints.
func (e *env) get(t testing.TB, server, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + e.addrs[server].String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
