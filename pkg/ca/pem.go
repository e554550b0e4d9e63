package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// parseCerts decodes every CERTIFICATE block in data (other block types are rejected).
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: unexpected PEM block %q", ErrInvalidKeyMaterial, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKeyMaterial, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// parseOneCert decodes exactly one certificate.
func parseOneCert(data []byte) (*x509.Certificate, error) {
	certs, err := parseCerts(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: want one certificate, have %d", ErrInvalidKeyMaterial, len(certs))
	}
	return certs[0], nil
}

// parseKey decodes a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%w: no PEM key", ErrInvalidKeyMaterial)
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%w: unexpected PEM block %q", ErrInvalidKeyMaterial, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKeyMaterial, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key of type %T cannot sign", ErrInvalidKeyMaterial, k)
	}
	return s, nil
}

// publicKeysEqual compares two public keys of the standard library's key types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
