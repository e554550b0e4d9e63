package caclient

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ErrInvalidChain is wrapped when a CA response is not a usable certificate chain for
// the requested identity and key.
var ErrInvalidChain = errors.New("invalid certificate chain from CA")

// Certificate is a workload certificate with its key, ready for TLS.
type Certificate struct {
	// Identity is the SPIFFE identity in the leaf's URI SAN.
	Identity spiffe.Identity
	// TLS holds the leaf and intermediates (not the root) and the private key.
	TLS *tls.Certificate
	// Leaf is the parsed leaf certificate.
	Leaf *x509.Certificate
	// Chain is the chain as the CA sent it: leaf first, intermediates, root last.
	Chain []*x509.Certificate
	// Roots holds the root (the chain's last certificate), to verify peers.
	Roots *x509.CertPool
	// NotBefore and NotAfter are the leaf's validity window.
	NotBefore, NotAfter time.Time
}

// Root returns the chain's last certificate, the trust anchor.
func (c *Certificate) Root() *x509.Certificate { return c.Chain[len(c.Chain)-1] }

// RotateAt returns when the certificate is due for renewal: half-way through its
// lifetime, as Istio's ztunnel.
func (c *Certificate) RotateAt() time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

// newCertificate parses a CA response chain (elements may hold several PEM
// certificates each) and checks that the leaf is for id and key and chains to the last
// certificate at now. Errors wrap ErrInvalidChain.
func newCertificate(chainPEM []string, key crypto.Signer, id spiffe.Identity, now time.Time) (*Certificate, error) {
	var chain []*x509.Certificate
	for i, s := range chainPEM {
		rest := []byte(s)
		n := 0
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("%w: element %d holds a %q block", ErrInvalidChain, i, b.Type)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: element %d: %w", ErrInvalidChain, i, err)
			}
			chain = append(chain, c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: element %d holds no certificate", ErrInvalidChain, i)
		}
	}
	if len(chain) < 2 {
		return nil, fmt.Errorf("%w: want leaf and root, have %d certificates", ErrInvalidChain, len(chain))
	}
	leaf, root := chain[0], chain[len(chain)-1]
	if pk, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: leaf is not for our key", ErrInvalidChain)
	}
	got, err := spiffe.FromCertificate(leaf)
	if err != nil || got != id {
		return nil, fmt.Errorf("%w: leaf identity %v, want %s (%v)", ErrInvalidChain, got, id, err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidChain, err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain[:len(chain)-1] {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return &Certificate{
		Identity: id, TLS: tc, Leaf: leaf, Chain: chain, Roots: roots,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
	}, nil
}
