package caclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

var (
	idClient = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	idServer = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "server"}
)

// fakeCA is a narrow IstioCertificateService that signs whatever it is asked with a
// real ca.Authority, records what it received and can be told to misbehave.
type fakeCA struct {
	pb.UnimplementedIstioCertificateServiceServer
	authority *ca.Authority
	mangle    func(chain []string) []string

	mu   sync.Mutex
	md   metadata.MD
	req  *pb.IstioCertificateRequest
	code codes.Code
}

func (f *fakeCA) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.md, f.req = md, req
	code, mangle := f.code, f.mangle
	f.mu.Unlock()
	if code != codes.OK {
		return nil, status.Error(code, "told to fail")
	}
	id := idClient
	if v := req.GetMetadata().GetFields()["ImpersonatedIdentity"]; v != nil {
		var err error
		if id, err = spiffe.Parse(v.GetStringValue()); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	chain, err := f.authority.Sign([]byte(req.GetCsr()), id, time.Duration(req.GetValidityDuration())*time.Second)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if mangle != nil {
		chain = mangle(chain)
	}
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}

func startFakeCA(t *testing.T) (*fakeCA, string) {
	t.Helper()
	a, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCA{authority: a}
	g := grpc.NewServer()
	pb.RegisterIstioCertificateServiceServer(g, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return f, lis.Addr().String()
}

func TestFetch(t *testing.T) {
	f, addr := startFakeCA(t)
	c, err := New(Config{Address: addr, Token: func() (string, error) { return "tok", nil }, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	cert, err := c.Fetch(t.Context(), idServer, true)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	md, req := f.md, f.req
	f.mu.Unlock()
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer tok" {
		t.Errorf("authorization = %q", got)
	}
	if got := md.Get("clusterid"); len(got) != 1 || got[0] != "Kubernetes" {
		t.Errorf("clusterid = %q", got)
	}
	if got := req.GetMetadata().GetFields()["ImpersonatedIdentity"].GetStringValue(); got != idServer.String() {
		t.Errorf("ImpersonatedIdentity = %q", got)
	}
	if req.GetValidityDuration() != 3600 {
		t.Errorf("validity = %d, want 3600", req.GetValidityDuration())
	}
	if cert.Identity != idServer || len(cert.Chain) != 2 || len(cert.TLS.Certificate) != 1 {
		t.Errorf("cert identity %s, chain %d, tls chain %d", cert.Identity, len(cert.Chain), len(cert.TLS.Certificate))
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != time.Hour+time.Minute {
		t.Errorf("lifetime = %v", got)
	}
	if !cert.RotateAt().Equal(cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)) {
		t.Error("RotateAt is not half life")
	}

	if _, err := c.Fetch(t.Context(), idClient, false); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if f.req.GetMetadata() != nil {
		t.Error("metadata struct sent without impersonation")
	}
	f.code = codes.PermissionDenied
	f.mu.Unlock()
	if _, err := c.Fetch(t.Context(), idClient, false); status.Code(err) != codes.PermissionDenied {
		t.Errorf("denied fetch: %v", err)
	}
}

func TestFetchTokenError(t *testing.T) {
	_, addr := startFakeCA(t)
	boom := errors.New("boom")
	c, err := New(Config{Address: addr, Token: func() (string, error) { return "", boom }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Fetch(t.Context(), idClient, false); !errors.Is(err, boom) {
		t.Errorf("err = %v, want token error", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted an empty address")
	}
}

func TestFetchRejectsBadChains(t *testing.T) {
	f, addr := startFakeCA(t)
	c, err := New(Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, _ := ca.LoadOrCreate(t.TempDir(), "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignLeaf := func([]string) []string {
		chain, err := f.authority.Sign(csrFor(t, key, idClient), idClient, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return chain
	}
	for _, tc := range []struct {
		name   string
		id     spiffe.Identity
		mangle func([]string) []string
	}{
		{"leaf only", idClient, func(c []string) []string { return c[:1] }},
		{"empty", idClient, func([]string) []string { return nil }},
		{"garbage element", idClient, func(c []string) []string { return []string{c[0], "junk"} }},
		{"wrong root", idClient, func(c []string) []string { return []string{c[0], string(other.RootPEM())} }},
		{"leaf for another key", idClient, foreignLeaf},
		{"leaf for another identity", idClient, func(c []string) []string {
			f.mu.Lock()
			csr := f.req.GetCsr()
			f.mu.Unlock()
			return signDirect(t, []byte(csr), idServer)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.mangle = tc.mangle
			f.mu.Unlock()
			_, err := c.Fetch(t.Context(), tc.id, false)
			if !errors.Is(err, ErrInvalidChain) {
				t.Fatalf("err = %v, want ErrInvalidChain", err)
			}
		})
	}
}

func TestNewCertificateConcatenatedElement(t *testing.T) {
	a, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := a.Sign(csrFor(t, key, idClient), idClient, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Some CAs put several PEM certificates in one element; the root must still be last.
	cert, err := newCertificate([]string{strings.Join(chain, "")}, key, idClient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Chain) != 2 || cert.Root().Subject.CommonName != "Ambit root CA" {
		t.Errorf("chain %d certs, root %q", len(cert.Chain), cert.Root().Subject)
	}
}

// signDirect issues a leaf for id over the CSR's key from a throwaway root, bypassing
// ca.Authority's CSR checks, and returns [leaf, root] as PEM.
func signDirect(t *testing.T, csrPEM []byte, id spiffe.Identity) []string {
	t.Helper()
	rootPEM, rootKeyPEM, err := ca.GenerateRoot("cluster.local", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := pem.Decode(rootPEM)
	root, _ := x509.ParseCertificate(rb.Bytes)
	kb, _ := pem.Decode(rootKeyPEM)
	rootKey, _ := x509.ParsePKCS8PrivateKey(kb.Bytes)
	cb, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), URIs: []*url.URL{id.URL()},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(rootPEM)}
}

// csrFor returns a PEM CSR over key with id as its URI SAN.
func csrFor(t *testing.T, key *ecdsa.PrivateKey, id spiffe.Identity) []byte {
	t.Helper()
	csr, err := makeCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func makeCSR(key *ecdsa.PrivateKey, id spiffe.Identity) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
