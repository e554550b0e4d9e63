package hbone

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// alpnH2 is the only application protocol HBONE negotiates.
const alpnH2 = "h2"

// verifyPeer checks a peer's chain against roots and its SPIFFE trust domain, for the
// given extended key usage, and returns the leaf's identity. Errors wrap
// ErrNoPeerCertificate, ErrExpired, ErrUntrustedPeer, spiffe.ErrInvalidID or
// ErrTrustDomain.
func verifyPeer(certs []*x509.Certificate, roots *x509.CertPool, td string, usage x509.ExtKeyUsage) (spiffe.Identity, error) {
	if len(certs) == 0 {
		return spiffe.Identity{}, ErrNoPeerCertificate
	}
	if roots == nil {
		return spiffe.Identity{}, fmt.Errorf("%w: no mesh roots configured", ErrUntrustedPeer)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return spiffe.Identity{}, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return spiffe.Identity{}, fmt.Errorf("%w: %w", ErrUntrustedPeer, err)
	}
	id, err := spiffe.FromCertificate(certs[0])
	if err != nil {
		return spiffe.Identity{}, fmt.Errorf("peer identity: %w", err)
	}
	if id.TrustDomain != td {
		return spiffe.Identity{}, fmt.Errorf("%w: peer %s, want trust domain %q", ErrTrustDomain, id, td)
	}
	return id, nil
}

// checkSession enforces TLS 1.3, an AES-GCM suite and ALPN h2.
func checkSession(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("%w: version %x", ErrProtocol, cs.Version)
	}
	if cs.CipherSuite != tls.TLS_AES_128_GCM_SHA256 && cs.CipherSuite != tls.TLS_AES_256_GCM_SHA384 {
		return fmt.Errorf("%w: cipher suite %s", ErrProtocol, tls.CipherSuiteName(cs.CipherSuite))
	}
	if cs.NegotiatedProtocol != alpnH2 {
		return fmt.Errorf("%w: alpn %q, want %q", ErrProtocol, cs.NegotiatedProtocol, alpnH2)
	}
	return nil
}

// clientTLS builds the client's TLS configuration for one dial: no SNI, client
// certificate from cfg, server verified against the mesh roots and the expected
// identities (any one), as ztunnel.
func clientTLS(cfg *ClientConfig, want []spiffe.Identity) *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		MaxVersion:                  tls.VersionTLS13,
		NextProtos:                  []string{alpnH2},
		InsecureSkipVerify:          true, // no SNI and URI SANs: verified in VerifyConnection
		DynamicRecordSizingDisabled: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cfg.GetClientCertificate()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := checkSession(cs); err != nil {
				return err
			}
			id, err := verifyPeer(cs.PeerCertificates, rootsOf(cfg.Roots), cfg.TrustDomain, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("verify server: %w", err)
			}
			if !slices.Contains(want, id) {
				return fmt.Errorf("verify server: %w: got %s, want one of %v", ErrIdentityMismatch, id, want)
			}
			return nil
		},
	}
}

// serverTLS builds the server's TLS configuration: client certificate required and
// verified to the mesh roots and trust domain; session tickets off so every connection
// re-verifies the chain.
func serverTLS(cfg *ServerConfig) *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		MaxVersion:                  tls.VersionTLS13,
		NextProtos:                  []string{alpnH2},
		ClientAuth:                  tls.RequestClientCert, // required: VerifyConnection refuses none
		SessionTicketsDisabled:      true,
		DynamicRecordSizingDisabled: true,
		GetCertificate:              cfg.GetCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := checkSession(cs); err != nil {
				return err
			}
			if _, err := verifyPeer(cs.PeerCertificates, rootsOf(cfg.Roots), cfg.TrustDomain, x509.ExtKeyUsageClientAuth); err != nil {
				return fmt.Errorf("verify client: %w", err)
			}
			return nil
		},
	}
}

func rootsOf(f func() *x509.CertPool) *x509.CertPool {
	if f == nil {
		return nil
	}
	return f()
}
