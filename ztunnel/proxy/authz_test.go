package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
	"github.com/ambitmesh/ambit/ztunnel/rbac"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

func anyOf(t *testing.T, name string, m proto.Message) *delta.Resource {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &delta.Resource{Name: name, Resource: a}
}

func (f *fixture) applyAddress(t *testing.T, a *workloadapi.Address) {
	t.Helper()
	if err := f.store.Apply(state.TypeAddress, []*delta.Resource{anyOf(t, a.GetWorkload().GetUid(), a)}, nil); err != nil {
		t.Fatal(err)
	}
}

// applyPolicies upserts ps and removes the named policies in one WDS update.
func (f *fixture) applyPolicies(t *testing.T, removed []string, ps ...*security.Authorization) {
	t.Helper()
	var rs []*delta.Resource
	for _, p := range ps {
		rs = append(rs, anyOf(t, p.Namespace+"/"+p.Name, p))
	}
	if err := f.store.Apply(state.TypeAuthorization, rs, removed); err != nil {
		t.Fatal(err)
	}
}

var (
	clientA = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	clientB = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "other"}

	// strictPolicy is what a STRICT PeerAuthentication becomes: deny requests without a principal.
	strictPolicy = &security.Authorization{Name: "strict", Namespace: "istio-system", Scope: security.Scope_GLOBAL,
		Action: security.Action_DENY, Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{
			NotPrincipals: []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}},
		}}}}}}}
)

// denyPolicy denies, in namespace demo, connections matching m.
func denyPolicy(name string, m *security.Match) *security.Authorization {
	return &security.Authorization{Name: name, Namespace: "demo", Scope: security.Scope_NAMESPACE,
		Action: security.Action_DENY, Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{m}}}}}}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (f *fixture) dialHBONE(t *testing.T, cl *hbone.Client, app netip.AddrPort) (*hbone.Conn, error) {
	t.Helper()
	return cl.Dial(testCtx(t), hbone.Request{Address: f.hboneL.Addr().String(), Authority: app.String(), Identities: []spiffe.Identity{f.server}})
}

// dialPlain opens a plaintext connection to the inbound listener, delivered to app.
func (f *fixture) dialPlain(t *testing.T, app netip.AddrPort) net.Conn {
	t.Helper()
	c, err := f.tryDialPlain(t, app)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) tryDialPlain(t *testing.T, app netip.AddrPort) (net.Conn, error) {
	in := netip.MustParseAddrPort(f.inboundL.Addr().String())
	f.netns.mu.Lock()
	f.netns.plainApp[in] = app
	f.netns.mu.Unlock()
	c, err := net.Dial("tcp", in.String())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// echoOnce writes msg and expects it back.
func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

// awaitClosed blocks until c's peer ends the connection (with a deadline) and returns the
// read error; a timeout fails the test.
func awaitClosed(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after the policy change")
	}
	return err
}

func denyLabels(security string) map[string]string {
	return map[string]string{"response_flags": metrics.ResponseFlagDeny, "connection_security_policy": security}
}

func TestInboundHBONEDeniedByPolicy(t *testing.T) {
	f := startProxy(t)
	app := echoApp(t)
	f.applyPolicies(t, nil, denyPolicy("no-client", &security.Match{
		Principals: []*security.StringMatch{{MatchType: &security.StringMatch_Exact{Exact: "cluster.local/ns/demo/sa/client"}}},
	}))
	denied := f.client(clientA)
	defer denied.Close()
	_, err := f.dialHBONE(t, denied, app)
	var se *hbone.StatusError
	if !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("denied client: err = %v, want status 401", err)
	}
	allowed := f.client(clientB)
	defer allowed.Close()
	conn, err := f.dialHBONE(t, allowed, app)
	if err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	echoOnce(t, conn, "still flows")
	conn.Close()
	waitCounter(t, f.reg, "istio_tcp_connections_failed_total", map[string]string{
		"response_flags": "DENY", "connection_security_policy": "mutual_tls", "source_principal": clientA.String(),
	}, 1)
	if n := gather(t, f.reg, "istio_tcp_connections_failed_total", map[string]string{"source_principal": clientB.String()}); n != 0 {
		t.Fatalf("allowed client counted as %v failures", n)
	}
}

func TestInboundPlaintextDeniedIsReset(t *testing.T) {
	f := startProxy(t)
	app := echoApp(t)
	f.applyPolicies(t, nil, strictPolicy)
	// The reset surfaces in the first syscall after it: connect when the proxy is fast,
	// otherwise the read (nothing is written, which would consume the error instead).
	c, err := f.tryDialPlain(t, app)
	if err == nil {
		err = awaitClosed(t, c)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("plaintext under STRICT: err = %v, want connection reset", err)
	}
	waitCounter(t, f.reg, "istio_tcp_connections_failed_total", denyLabels("none"), 1)

	// Removing the policy applies to the next connection.
	f.applyPolicies(t, []string{"istio-system/strict"})
	echoOnce(t, f.dialPlain(t, app), "allowed again")
}

func TestInboundRefusedWithoutOwnWorkload(t *testing.T) {
	f := startProxy(t)
	app := echoApp(t)
	if err := f.store.Apply(state.TypeAddress, nil, []string{podWorkloadUID}); err != nil {
		t.Fatal(err)
	}
	cl := f.client(clientA)
	defer cl.Close()
	_, err := f.dialHBONE(t, cl, app)
	var se *hbone.StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("err = %v, want status 503", err)
	}
}

func TestPolicyChangeClosesOpenConnections(t *testing.T) {
	f := startProxy(t)
	appA, appB := echoApp(t), echoApp(t)
	cl := f.client(clientA)
	defer cl.Close()
	tunA, err := f.dialHBONE(t, cl, appA)
	if err != nil {
		t.Fatal(err)
	}
	defer tunA.Close()
	tunB, err := f.dialHBONE(t, cl, appB)
	if err != nil {
		t.Fatal(err)
	}
	defer tunB.Close()
	plain := f.dialPlain(t, appA)
	for _, c := range []net.Conn{tunA, tunB, plain} {
		echoOnce(t, c, "before")
	}

	// One update: deny port A to everyone, and plaintext (STRICT).
	f.applyPolicies(t, nil, strictPolicy, denyPolicy("no-a", &security.Match{DestinationPorts: []uint32{uint32(appA.Port())}}))

	if err := awaitClosed(t, tunA); !errors.Is(err, hbone.ErrStreamReset) {
		t.Fatalf("hbone stream to the denied port: err = %v, want a stream reset", err)
	}
	if err := awaitClosed(t, plain); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("plaintext: err = %v, want connection reset", err)
	}
	echoOnce(t, tunB, "after") // not denied: untouched
	_, err = f.dialHBONE(t, cl, appA)
	var se *hbone.StatusError
	if !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("new stream to the denied port: err = %v, want status 401", err)
	}
	waitCounter(t, f.reg, "istio_tcp_connections_failed_total", denyLabels("mutual_tls"), 2) // tunA + the new stream
	waitCounter(t, f.reg, "istio_tcp_connections_failed_total", denyLabels("none"), 1)
}

func TestWorkloadPolicyListChangeClosesConnection(t *testing.T) {
	f := startProxy(t)
	app := echoApp(t)
	// A selector-scoped DENY arrives first; it applies only once the workload names it.
	sel := denyPolicy("sel", &security.Match{Principals: []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}}})
	sel.Scope = security.Scope_WORKLOAD_SELECTOR
	f.applyPolicies(t, nil, sel)
	cl := f.client(clientA)
	defer cl.Close()
	tun, err := f.dialHBONE(t, cl, app)
	if err != nil {
		t.Fatal(err)
	}
	echoOnce(t, tun, "before")
	f.applyAddress(t, &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: podWorkloadUID, Name: "server-0", Namespace: "demo", ServiceAccount: "server",
		Addresses: [][]byte{{127, 0, 0, 1}}, TunnelProtocol: workloadapi.TunnelProtocol_HBONE,
		AuthorizationPolicies: []string{"demo/sel"},
	}}})
	if err := awaitClosed(t, tun); !errors.Is(err, hbone.ErrStreamReset) {
		t.Fatalf("err = %v, want a stream reset", err)
	}
}

// TestTrackRedecides covers a policy change landing between a connection's decision and
// its registration, which the re-evaluation loop cannot see.
func TestTrackRedecides(t *testing.T) {
	store := state.New()
	p := New(Config{Store: store, Router: &Router{Store: store}, Certs: newTestCerts(t),
		Metrics: metrics.New(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler)},
		Pod{Name: "server-0", Namespace: "demo", IP: netip.MustParseAddr("127.0.0.1")})
	f := &fixture{store: store}
	f.applyAddress(t, &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: podWorkloadUID, Namespace: "demo", Addresses: [][]byte{{127, 0, 0, 1}}}}})
	rc := rbac.Connection{SrcIP: netip.MustParseAddr("127.0.0.2"), DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: 80}
	d, dst, gen, err := p.authorize(rc)
	if err != nil || !d.Allow {
		t.Fatalf("authorize = %+v, %v", d, err)
	}
	f.applyPolicies(t, nil, strictPolicy)
	lc := newLiveConn(rc, dst, func() {})
	if d := p.track(lc, gen); d.Allow || d.Policy != "istio-system/strict" {
		t.Fatalf("track = %+v, want denied by istio-system/strict", d)
	}
	if n := len(p.live.list()); n != 0 {
		t.Fatalf("%d connections tracked after a deny", n)
	}
	_, _, gen, _ = p.authorize(rc)
	if d := p.track(newLiveConn(rc, dst, func() {}), gen); !d.Allow || len(p.live.list()) != 1 {
		t.Fatalf("unchanged generation: %+v, %d tracked", d, len(p.live.list()))
	}
}
