package caserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

const serverName = "istiod.istio-system.svc"

func sa(ns, name string) spiffe.Identity {
	return spiffe.Identity{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: name}
}

var (
	client  = sa("demo", "client")
	server  = sa("demo", "server")
	other   = sa("demo", "other")
	ztunnel = sa("istio-system", "ztunnel")
)

const tokensFile = `# test tokens
ztunnel-node1  istio-system/ztunnel node=node1
ztunnel-nonode istio-system/ztunnel

app-token      demo/client
rogue-node1    demo/rogue node=node1
`

type env struct {
	authority *ca.Authority
	addr      string
}

// startServer runs a caserver over TLS on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, maxTTL time.Duration) *env {
	t.Helper()
	a, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	toks, err := ParseTokens(strings.NewReader(tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{
		Authority: a, Tokens: toks, MaxTTL: maxTTL,
		IdentitiesOnNode: func(node string) []spiffe.Identity {
			return map[string][]spiffe.Identity{"node1": {client, server}, "node2": {other}}[node]
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	serving, err := a.ServingCertificate([]string{serverName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s, grpc.Creds(credentials.NewTLS(ServerTLSConfig(serving, a.Roots()))))
	return &env{authority: a, addr: addr}
}

// serve runs s on a loopback gRPC server with opts until the test ends and returns its
// address.
func serve(t *testing.T, s *Server, opts ...grpc.ServerOption) string {
	t.Helper()
	g := grpc.NewServer(opts...)
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// tlsConfig trusts the mesh root; with certFor set it presents a certificate for that
// identity signed directly by the authority.
func (e *env) tlsConfig(t *testing.T, certFor *spiffe.Identity) *tls.Config {
	cfg := &tls.Config{RootCAs: e.authority.Roots(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFor != nil {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{certFor.URL()}}, key)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := e.authority.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), *certFor, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode([]byte(chain[0]))
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{b.Bytes}, PrivateKey: key}}
	}
	return cfg
}

func (e *env) client(t *testing.T, cfg caclient.Config) *caclient.Client {
	t.Helper()
	cfg.Address = e.addr
	c, err := caclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func token(s string) func() (string, error) { return func() (string, error) { return s, nil } }

func TestCreateCertificate(t *testing.T) {
	e := startServer(t, 0)
	for _, tc := range []struct {
		name        string
		token       string
		certFor     *spiffe.Identity
		clusterID   string
		id          spiffe.Identity
		impersonate bool
		want        codes.Code
	}{
		{name: "token, own identity", token: "app-token", id: client, want: codes.OK},
		{name: "token, csr for another identity", token: "app-token", id: server, want: codes.InvalidArgument},
		{name: "unknown token", token: "nope", id: client, want: codes.Unauthenticated},
		{name: "no credentials", id: client, want: codes.Unauthenticated},
		{name: "client certificate, own identity", certFor: &server, id: server, want: codes.OK},
		{name: "client certificate, csr for another identity", certFor: &server, id: client, want: codes.InvalidArgument},
		{name: "ztunnel own identity", token: "ztunnel-node1", id: ztunnel, want: codes.OK},
		{name: "impersonate pod on caller's node", token: "ztunnel-node1", id: client, impersonate: true, want: codes.OK},
		{name: "impersonate pod on another node", token: "ztunnel-node1", id: other, impersonate: true, want: codes.PermissionDenied},
		{name: "impersonate by non-trusted caller", token: "rogue-node1", id: client, impersonate: true, want: codes.PermissionDenied},
		{name: "impersonate without node", token: "ztunnel-nonode", id: client, impersonate: true, want: codes.PermissionDenied},
		{name: "impersonate by certificate caller", certFor: &ztunnel, id: client, impersonate: true, want: codes.PermissionDenied},
		{name: "impersonate with wrong clusterid", token: "ztunnel-node1", clusterID: "other", id: client, impersonate: true, want: codes.PermissionDenied},
		{name: "own identity with wrong clusterid", token: "app-token", clusterID: "other", id: client, want: codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := caclient.Config{TLS: e.tlsConfig(t, tc.certFor), ClusterID: tc.clusterID}
			if tc.token != "" {
				cfg.Token = token(tc.token)
			}
			cert, err := e.client(t, cfg).Fetch(t.Context(), tc.id, tc.impersonate)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Fetch: code %v (%v), want %v", got, err, tc.want)
			}
			if err != nil {
				return
			}
			if cert.Identity != tc.id {
				t.Errorf("identity %s, want %s", cert.Identity, tc.id)
			}
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: e.authority.Roots()}); err != nil {
				t.Errorf("leaf does not verify: %v", err)
			}
		})
	}
}

// rawCall sends a hand-made request over an authenticated connection.
func (e *env) rawCall(t *testing.T, md metadata.MD, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(e.tlsConfig(t, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.NewOutgoingContext(t.Context(), md)
	return pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, req)
}

func csrPEM(t *testing.T, ids ...spiffe.Identity) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{}
	for _, id := range ids {
		tmpl.URIs = append(tmpl.URIs, id.URL())
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func impersonating(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"ImpersonatedIdentity": structpb.NewStringValue(id)}}
}

func TestCreateCertificateRaw(t *testing.T) {
	e := startServer(t, 0)
	node1 := func(kv ...string) metadata.MD {
		return metadata.Pairs(append([]string{"authorization", "Bearer ztunnel-node1"}, kv...)...)
	}
	for _, tc := range []struct {
		name string
		md   metadata.MD
		req  *pb.IstioCertificateRequest
		want codes.Code
	}{
		{"impersonation without clusterid", node1(),
			&pb.IstioCertificateRequest{Csr: csrPEM(t, client), Metadata: impersonating(client.String())}, codes.PermissionDenied},
		{"impersonation in grpc metadata", node1("clusterid", "Kubernetes", "ImpersonatedIdentity", client.String()),
			&pb.IstioCertificateRequest{Csr: csrPEM(t, client)}, codes.OK},
		{"conflicting impersonation values", node1("clusterid", "Kubernetes", "ImpersonatedIdentity", server.String()),
			&pb.IstioCertificateRequest{Csr: csrPEM(t, client), Metadata: impersonating(client.String())}, codes.InvalidArgument},
		{"impersonated identity not spiffe", node1("clusterid", "Kubernetes"),
			&pb.IstioCertificateRequest{Csr: csrPEM(t), Metadata: impersonating("demo/client")}, codes.InvalidArgument},
		{"impersonation, csr names another identity", node1("clusterid", "Kubernetes"),
			&pb.IstioCertificateRequest{Csr: csrPEM(t, server), Metadata: impersonating(client.String())}, codes.InvalidArgument},
		{"csr without san", node1("clusterid", "Kubernetes"),
			&pb.IstioCertificateRequest{Csr: csrPEM(t), Metadata: impersonating(client.String())}, codes.OK},
		{"garbage csr", node1("clusterid", "Kubernetes"),
			&pb.IstioCertificateRequest{Csr: "not a csr"}, codes.InvalidArgument},
		{"malformed authorization", metadata.Pairs("authorization", "Basic abc"),
			&pb.IstioCertificateRequest{Csr: csrPEM(t, client)}, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.rawCall(t, tc.md, tc.req)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestCreateCertificateChainAndTTL(t *testing.T) {
	e := startServer(t, time.Hour)
	for _, tc := range []struct {
		name    string
		seconds int64
		want    time.Duration
	}{
		{"requested", 600, 10 * time.Minute},
		{"capped at MaxTTL", 48 * 3600, time.Hour},
		{"zero means MaxTTL", 0, time.Hour},
		{"huge does not overflow", 1 << 62, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.rawCall(t, metadata.Pairs("authorization", "Bearer app-token"),
				&pb.IstioCertificateRequest{Csr: csrPEM(t, client), ValidityDuration: tc.seconds})
			if err != nil {
				t.Fatal(err)
			}
			chain := resp.GetCertChain()
			if len(chain) != 2 || chain[1] != string(e.authority.RootPEM()) {
				t.Fatalf("chain has %d elements; want leaf then root", len(chain))
			}
			b, rest := pem.Decode([]byte(chain[0]))
			if b == nil || len(strings.TrimSpace(string(rest))) != 0 {
				t.Fatal("leaf element is not exactly one PEM certificate")
			}
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := leaf.NotAfter.Sub(leaf.NotBefore) - time.Minute; got != tc.want {
				t.Errorf("lifetime %v, want %v (+1m backdate)", got, tc.want)
			}
		})
	}
}

func TestAuthenticateChain(t *testing.T) {
	bad := errors.New("rejected")
	for _, tc := range []struct {
		name    string
		authns  []Authenticator
		wantErr bool
	}{
		{"first success wins", []Authenticator{fakeAuthn{err: ErrNoCredentials}, fakeAuthn{caller: &Caller{Identity: client}}}, false},
		{"all absent", []Authenticator{fakeAuthn{err: ErrNoCredentials}}, true},
		{"rejected", []Authenticator{fakeAuthn{err: bad}}, true},
		{"nil caller without error is not success", []Authenticator{fakeAuthn{}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := authenticate(t.Context(), tc.authns)
			if (err != nil) != tc.wantErr || (err == nil && c == nil) {
				t.Fatalf("authenticate = %v, %v", c, err)
			}
		})
	}
}

type fakeAuthn struct {
	caller *Caller
	err    error
}

func (f fakeAuthn) Authenticate(context.Context) (*Caller, error) { return f.caller, f.err }

func TestNoAuthority(t *testing.T) {
	_, err := New(Config{}).CreateCertificate(t.Context(), &pb.IstioCertificateRequest{Csr: csrPEM(t, client)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err = %v, want FailedPrecondition", err)
	}
}
