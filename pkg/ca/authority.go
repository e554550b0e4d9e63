// Package ca is Ambit's certificate authority: it holds the mesh signing key and root,
// and signs the short-lived workload certificates that carry SPIFFE identities, shaped
// as Istio's CA shapes them (empty subject, one critical URI SAN, leaf-first chains).
// It also issues istiod-lite's own serving certificate.
//
// Key material comes from Istio's plug-in layout (ca-cert.pem, ca-key.pem,
// root-cert.pem, cert-chain.pem) or is generated as a self-signed root (LoadOrCreate).
package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Lifetimes of issued workload certificates.
const (
	// DefaultMaxTTL caps workload certificate lifetimes when Authority.MaxTTL is zero
	// (Istio's default workload certificate TTL is 24h).
	DefaultMaxTTL = 24 * time.Hour
	// MinTTL is the shortest lifetime Sign issues; shorter requests are raised to it.
	MinTTL = time.Minute
	// backdate is subtracted from NotBefore to tolerate clock skew between nodes.
	backdate = time.Minute
)

// Sentinel errors; Sign and New wrap them so callers can branch with errors.Is.
var (
	// ErrInvalidCSR: the CSR is not PEM, does not parse, has a bad signature or an
	// unsupported key.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrIdentityMismatch: the CSR names a URI SAN other than the identity being issued.
	ErrIdentityMismatch = errors.New("csr identity does not match the requested identity")
	// ErrForeignTrustDomain: the requested identity is outside the authority's trust domain.
	ErrForeignTrustDomain = errors.New("identity outside the authority's trust domain")
	// ErrInvalidKeyMaterial: CA certificate, key, chain or root are missing, malformed or
	// do not belong together.
	ErrInvalidKeyMaterial = errors.New("invalid ca key material")
)

// Authority signs workload and serving certificates with one CA key. It is safe for
// concurrent use once its exported fields are set (set them before first use).
type Authority struct {
	// Now returns the current time for validity windows; nil means time.Now.
	Now func() time.Time
	// MaxTTL caps workload certificate lifetimes; zero means DefaultMaxTTL.
	MaxTTL time.Duration

	trustDomain string
	cert        *x509.Certificate   // signing certificate (ca-cert.pem)
	key         crypto.Signer       // its key (ca-key.pem)
	chain       []*x509.Certificate // cert, intermediates, root: the verified path
	roots       []*x509.Certificate // every certificate in root-cert.pem
	rootPEM     []byte
}

// New builds an Authority from PEM key material in Istio's plug-in shape: caCertPEM is
// the signing certificate, caKeyPEM its private key (PKCS#8, SEC 1 EC or PKCS#1 RSA),
// chainPEM the certificates from the signing certificate towards the root (may be empty
// or include the signing certificate and root; duplicates are ignored), rootPEM one or
// more trusted roots. The signing certificate must be a CA whose key matches caKeyPEM and
// which chains to a root in rootPEM at the current time. An empty trustDomain means
// spiffe.DefaultTrustDomain. Errors wrap ErrInvalidKeyMaterial.
func New(caCertPEM, caKeyPEM, chainPEM, rootPEM []byte, trustDomain string) (*Authority, error) {
	if trustDomain == "" {
		trustDomain = spiffe.DefaultTrustDomain
	}
	cert, err := parseOneCert(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("new ca: ca cert: %w", err)
	}
	if !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("new ca: %w: ca cert is not a signing CA", ErrInvalidKeyMaterial)
	}
	key, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("new ca: ca key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("new ca: %w: ca key does not match ca cert", ErrInvalidKeyMaterial)
	}
	inter, err := parseCerts(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("new ca: cert chain: %w", err)
	}
	roots, err := parseCerts(rootPEM)
	if err != nil || len(roots) == 0 {
		return nil, fmt.Errorf("new ca: %w: root cert missing or malformed", ErrInvalidKeyMaterial)
	}
	chain, err := verifyPath(cert, inter, roots, time.Now())
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	return &Authority{
		trustDomain: trustDomain,
		cert:        cert,
		key:         key,
		chain:       chain,
		roots:       roots,
		rootPEM:     append([]byte(nil), rootPEM...),
	}, nil
}

// verifyPath returns the path cert → intermediates → root that x509 verification finds.
func verifyPath(cert *x509.Certificate, inter, roots []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range inter {
		interPool.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: interPool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: ca cert does not chain to root: %w", ErrInvalidKeyMaterial, err)
	}
	return chains[0], nil
}

// TrustDomain returns the trust domain whose identities this authority signs.
func (a *Authority) TrustDomain() string { return a.trustDomain }

// RootPEM returns the trusted roots as PEM (the contents of root-cert.pem).
func (a *Authority) RootPEM() []byte { return append([]byte(nil), a.rootPEM...) }

// Roots returns a new pool holding the trusted roots, for verifying peers' certificates.
func (a *Authority) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range a.roots {
		p.AddCert(r)
	}
	return p
}

// Intermediates returns a new pool holding the certificates between issued leaves and
// the root (the signing certificate and its intermediates; empty for a self-signed root).
func (a *Authority) Intermediates() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range a.chain[:len(a.chain)-1] {
		p.AddCert(c)
	}
	return p
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authority) maxTTL() time.Duration {
	if a.MaxTTL > 0 {
		return a.MaxTTL
	}
	return DefaultMaxTTL
}

// caNotAfter is the earliest expiry on the signing path; no leaf outlives it.
func (a *Authority) caNotAfter() time.Time {
	t := a.chain[0].NotAfter
	for _, c := range a.chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}
