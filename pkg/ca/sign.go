package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// DefaultServingTTL is the lifetime of ServingCertificate's certificate when ttl <= 0.
const DefaultServingTTL = 365 * 24 * time.Hour

// Sign issues a workload certificate for id over the public key of csrPEM (a PEM
// "CERTIFICATE REQUEST"). The CSR's signature must verify and its key must be ECDSA
// (P-256/P-384), RSA (>= 2048 bits) or Ed25519, else the error wraps ErrInvalidCSR. The
// CSR may carry no URI SAN or exactly one equal to id, else the error wraps
// ErrIdentityMismatch; its other SANs and subject are ignored. id must be in the
// authority's trust domain (else ErrForeignTrustDomain).
//
// As Istio's CA: the leaf has an empty subject, one critical URI SAN = id, key usage
// DigitalSignature|KeyEncipherment, extended key usage ServerAuth+ClientAuth. It is
// valid from now-1m for ttl, where ttl <= 0 means MaxTTL, ttl is capped at MaxTTL
// (default 24h), raised to MinTTL (1m), and never outlives the CA. The result is the PEM
// chain, one certificate per element: leaf first, then intermediates, root last.
func (a *Authority) Sign(csrPEM []byte, id spiffe.Identity, ttl time.Duration) ([]string, error) {
	if err := a.checkIdentity(id); err != nil {
		return nil, fmt.Errorf("sign csr: %w", err)
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign csr: %w", err)
	}
	switch {
	case len(csr.URIs) > 1:
		return nil, fmt.Errorf("sign csr: %w: csr has %d URI SANs", ErrIdentityMismatch, len(csr.URIs))
	case len(csr.URIs) == 1 && csr.URIs[0].String() != id.String():
		return nil, fmt.Errorf("sign csr: %w: csr asks for %q, issuing %q", ErrIdentityMismatch, csr.URIs[0], id)
	}
	now := a.now()
	tmpl := &x509.Certificate{
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		NotBefore:             now.Add(-backdate),
		NotAfter:              a.clampExpiry(now.Add(a.leafTTL(ttl))),
	}
	leaf, err := a.issue(tmpl, csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sign csr: %w", err)
	}
	out := []string{string(certPEM(leaf))}
	for _, c := range a.chain {
		out = append(out, string(certPEM(c.Raw)))
	}
	return out, nil
}

// ServingCertificate issues a TLS server certificate for istiod-lite's own listener
// with a fresh ECDSA P-256 key. dnsNames become DNS SANs (entries that parse as IP
// addresses become IP SANs), e.g. "istiod.istio-system.svc"; at least one is required.
// ttl <= 0 means DefaultServingTTL; the certificate never outlives the CA. The returned
// chain is the leaf followed by intermediates (the root is left for the peer's pool).
func (a *Authority) ServingCertificate(dnsNames []string, ttl time.Duration) (*tls.Certificate, error) {
	if len(dnsNames) == 0 {
		return nil, fmt.Errorf("serving certificate: no DNS names")
	}
	if ttl <= 0 {
		ttl = DefaultServingTTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: generate key: %w", err)
	}
	now := a.now()
	tmpl := &x509.Certificate{
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		NotBefore:             now.Add(-backdate),
		NotAfter:              a.clampExpiry(now.Add(ttl)),
	}
	for _, n := range dnsNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := a.issue(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	tc := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	for _, c := range a.chain[:len(a.chain)-1] {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

// issue fills in the serial number and signs tmpl with the CA key.
func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1)) // never zero
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

func (a *Authority) checkIdentity(id spiffe.Identity) error {
	parsed, err := spiffe.Parse(id.String())
	if err != nil || parsed != id {
		return fmt.Errorf("%w: %q", spiffe.ErrInvalidID, id)
	}
	if id.TrustDomain != a.trustDomain {
		return fmt.Errorf("%w: %q is not in %q", ErrForeignTrustDomain, id, a.trustDomain)
	}
	return nil
}

func (a *Authority) leafTTL(ttl time.Duration) time.Duration {
	maxTTL := a.maxTTL()
	switch {
	case ttl <= 0 || ttl > maxTTL:
		return maxTTL
	case ttl < MinTTL:
		return MinTTL
	}
	return ttl
}

func (a *Authority) clampExpiry(t time.Time) time.Time {
	if ca := a.caNotAfter(); t.After(ca) {
		return ca
	}
	return t
}

// parseCSR decodes and checks a PEM CSR; errors wrap ErrInvalidCSR.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("%w: not a PEM certificate request", ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: unsupported curve %s", ErrInvalidCSR, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: rsa key of %d bits is too short", ErrInvalidCSR, k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrInvalidCSR, k)
	}
	return csr, nil
}
