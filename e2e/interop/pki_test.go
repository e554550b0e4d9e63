package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// trustDomain is the mesh trust domain of every test identity.
const trustDomain = spiffe.DefaultTrustDomain

// Workload identities used by the tests.
var (
	serverID = spiffe.Identity{TrustDomain: trustDomain, Namespace: "demo", ServiceAccount: "server"}
	clientID = spiffe.Identity{TrustDomain: trustDomain, Namespace: "demo", ServiceAccount: "client"}
	otherID  = spiffe.Identity{TrustDomain: trustDomain, Namespace: "demo", ServiceAccount: "other"}
)

// newAuthority returns a fresh Ambit CA with its own self-signed root, kept in a
// temporary directory (the same path istiod-lite takes with an empty CA directory).
func newAuthority(t testing.TB) *ca.Authority {
	t.Helper()
	a, err := ca.LoadOrCreate(t.TempDir(), trustDomain)
	if err != nil {
		t.Fatalf("create ca: %v", err)
	}
	return a
}

// issue issues a workload certificate for id the way ztunnel obtains one: a fresh
// ECDSA P-256 key, a PEM CSR with the identity as its only URI SAN, Authority.Sign. It
// returns the chain (leaf first) with its key, ready for a TLS configuration.
func issue(t testing.TB, a *ca.Authority, id spiffe.Identity) *tls.Certificate {
	t.Helper()
	cert, err := issueCert(a, id)
	if err != nil {
		t.Fatalf("issue certificate for %s: %v", id, err)
	}
	return cert
}

func issueCert(a *ca.Authority, id spiffe.Identity) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{id.URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	chain, err := a.Sign(csrPEM, id, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	out := &tls.Certificate{PrivateKey: key}
	for i, p := range chain {
		block, rest := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
			return nil, fmt.Errorf("chain element %d: not one PEM certificate", i)
		}
		out.Certificate = append(out.Certificate, block.Bytes)
	}
	if len(out.Certificate) == 0 {
		return nil, errors.New("empty chain")
	}
	leaf, err := x509.ParseCertificate(out.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse leaf: %w", err)
	}
	if got, err := spiffe.FromCertificate(leaf); err != nil || got != id {
		return nil, fmt.Errorf("leaf identity %v (%v), want %s", got, err, id)
	}
	out.Leaf = leaf
	return out, nil
}

// verifyChain checks a peer's chain against roots with the given extended key usage
// and no host name (HBONE identities are URI SANs), returning the leaf's identity. The
// tests' Istio-side TLS configurations use it: Istio's HBONE client checks the chain
// but not the SAN.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (spiffe.Identity, error) {
	if len(certs) == 0 {
		return spiffe.Identity{}, errors.New("verify chain: no peer certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return spiffe.Identity{}, fmt.Errorf("verify chain: %w", err)
	}
	id, err := spiffe.FromCertificate(certs[0])
	if err != nil {
		return spiffe.Identity{}, fmt.Errorf("verify chain: %w", err)
	}
	return id, nil
}
