package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names of Istio's plug-in CA layout ("cacerts" secret), used by LoadOrCreate.
const (
	FileCACert    = "ca-cert.pem"
	FileCAKey     = "ca-key.pem"
	FileRootCert  = "root-cert.pem"
	FileCertChain = "cert-chain.pem"
)

// RootTTL is the lifetime of a generated self-signed root.
const RootTTL = 10 * 365 * 24 * time.Hour

// LoadOrCreate returns the authority kept in dir. When dir holds Istio's plug-in layout
// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) it is loaded with New. When
// none of those files exist, a self-signed ECDSA P-256 root valid for RootTTL is
// generated and written there (ca-cert.pem = root-cert.pem = cert-chain.pem, ca-key.pem
// as PKCS#8 with mode 0600; dir is created 0700 if missing), as istiod's self-signed CA
// does. A partial layout is an error naming the missing files, so a damaged plug-in
// CA is never silently replaced. An empty trustDomain means spiffe.DefaultTrustDomain.
func LoadOrCreate(dir, trustDomain string) (*Authority, error) {
	names := []string{FileCACert, FileCAKey, FileRootCert, FileCertChain}
	data := make(map[string][]byte, len(names))
	var missing []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, n)
		case err != nil:
			return nil, fmt.Errorf("load ca: %w", err)
		default:
			data[n] = b
		}
	}
	switch len(missing) {
	case 0:
		a, err := New(data[FileCACert], data[FileCAKey], data[FileCertChain], data[FileRootCert], trustDomain)
		if err != nil {
			return nil, fmt.Errorf("load ca from %s: %w", dir, err)
		}
		return a, nil
	case len(names):
		return create(dir, trustDomain)
	default:
		return nil, fmt.Errorf("load ca from %s: %w: missing %v", dir, ErrInvalidKeyMaterial, missing)
	}
}

// create generates a self-signed root, writes it to dir and loads it back through New.
func create(dir, trustDomain string) (*Authority, error) {
	certPEMBytes, keyPEMBytes, err := GenerateRoot(trustDomain, time.Now(), RootTTL)
	if err != nil {
		return nil, fmt.Errorf("create ca: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ca: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileCAKey, keyPEMBytes, 0o600},
		{FileCACert, certPEMBytes, 0o644},
		{FileCertChain, certPEMBytes, 0o644},
		{FileRootCert, certPEMBytes, 0o644},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("create ca: %w", err)
		}
	}
	a, err := New(certPEMBytes, keyPEMBytes, certPEMBytes, certPEMBytes, trustDomain)
	if err != nil {
		return nil, fmt.Errorf("create ca: %w", err)
	}
	return a, nil
}

// GenerateRoot makes a self-signed ECDSA P-256 CA certificate valid from now-1h for ttl,
// with organisation = trustDomain (as Istio's self-signed root), and returns it and its
// PKCS#8 key as PEM. Tests use it to build plug-in layouts.
func GenerateRoot(trustDomain string, now time.Time, ttl time.Duration) (certPEMBytes, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate root: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: "Ambit root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate root: %w", err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate root: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate root: %w", err)
	}
	return certPEM(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// writeFileAtomic writes data to a temporary file in the same directory and renames it
// over path, so readers never see a half-written file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
