package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// TLS is the waypoint's TLS material from SDS.
type TLS struct {
	// Certificate is secret "default": the waypoint's chain (leaf first) and key.
	Certificate *tls.Certificate
	// Roots is secret "ROOTCA": the mesh roots peers must chain to.
	Roots *x509.CertPool
}

// buildSecrets reads "default" and "ROOTCA"; other secret names are rejected.
func buildSecrets(res *Resources, cfg *Config) error {
	for name, s := range res.Secrets {
		r := fmt.Sprintf("secret %q", name)
		if s.GetName() != name {
			return invalid(r, "name", "does not match the resource name")
		}
		switch name {
		case waypointxds.SecretDefault:
			if err := only(r, "", s, "name", "tls_certificate"); err != nil {
				return err
			}
		case waypointxds.SecretRootCA:
			if err := only(r, "", s, "name", "validation_context"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported secret name", r)
		}
	}
	t := &TLS{}
	if s := res.Secrets[waypointxds.SecretDefault]; s != nil {
		c, err := certificate(s.GetTlsCertificate())
		if err != nil {
			return err
		}
		t.Certificate = c
	}
	if s := res.Secrets[waypointxds.SecretRootCA]; s != nil {
		p, err := roots(s.GetValidationContext())
		if err != nil {
			return err
		}
		t.Roots = p
	}
	cfg.TLS = t
	return nil
}

func certificate(tc *tlsv3.TlsCertificate) (*tls.Certificate, error) {
	r := fmt.Sprintf("secret %q", waypointxds.SecretDefault)
	if err := only(r, "tls_certificate", tc, "certificate_chain", "private_key"); err != nil {
		return nil, err
	}
	chain, err := inline(r, "tls_certificate.certificate_chain", tc.GetCertificateChain())
	if err != nil {
		return nil, err
	}
	key, err := inline(r, "tls_certificate.private_key", tc.GetPrivateKey())
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, invalid(r, "tls_certificate", "%v", err)
	}
	return &c, nil
}

func roots(vc *tlsv3.CertificateValidationContext) (*x509.CertPool, error) {
	r := fmt.Sprintf("secret %q", waypointxds.SecretRootCA)
	if err := only(r, "validation_context", vc, "trusted_ca"); err != nil {
		return nil, err
	}
	pem, err := inline(r, "validation_context.trusted_ca", vc.GetTrustedCa())
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, invalid(r, "validation_context.trusted_ca", "no PEM certificate")
	}
	return p, nil
}

// inline reads an inline_bytes (or inline_string) DataSource.
func inline(res, path string, ds *corev3.DataSource) ([]byte, error) {
	if err := only(res, path, ds, "inline_bytes", "inline_string"); err != nil {
		return nil, err
	}
	switch {
	case len(ds.GetInlineBytes()) > 0:
		return ds.GetInlineBytes(), nil
	case ds.GetInlineString() != "":
		return []byte(ds.GetInlineString()), nil
	}
	return nil, invalid(res, path, "inline_bytes required")
}
