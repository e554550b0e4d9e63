package forward

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Identity is a forwarder's certificate (chain leaf first, with its key) and the roots
// it checks its peers' chains against.
type Identity struct {
	Cert  tls.Certificate
	Roots *x509.CertPool
}

// RequireIdentityFlags checks that the --cert, --key and --root flags of a forwarder
// were all given; the error names the first one missing.
func RequireIdentityFlags(certFile, keyFile, rootFile string) error {
	for _, f := range []struct{ name, value string }{{"cert", certFile}, {"key", keyFile}, {"root", rootFile}} {
		if f.value == "" {
			return fmt.Errorf("parse flags: --%s is required", f.name)
		}
	}
	return nil
}

// LoadIdentity reads a PEM chain (leaf first), its PEM private key and a PEM file of
// root certificates. Errors name the file that failed.
func LoadIdentity(certFile, keyFile, rootFile string) (*Identity, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("load roots: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("load roots: no certificate in %s", rootFile)
	}
	return &Identity{Cert: cert, Roots: roots}, nil
}

// VerifyChain checks a peer's chain (leaf first) against roots for the extended key
// usage, without a host name: mesh identities are URI SANs, which these baselines do
// not match (Istio's Go HBONE dialer checks none either).
func VerifyChain(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("verify peer chain: no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("verify peer chain: %w", err)
	}
	return nil
}
