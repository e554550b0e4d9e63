package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func big1() *big.Int { return big.NewInt(1) }

func TestLoadOrCreateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cacerts")
	a, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if a.TrustDomain() != "example.org" {
		t.Errorf("TrustDomain = %q", a.TrustDomain())
	}
	for _, n := range []string{FileCACert, FileCAKey, FileRootCert, FileCertChain} {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if n == FileCAKey && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", n, st.Mode().Perm())
		}
	}
	caCert, _ := os.ReadFile(filepath.Join(dir, FileCACert))
	if !bytes.Equal(caCert, a.RootPEM()) {
		t.Error("self-signed ca-cert.pem differs from root-cert.pem")
	}
	root, err := parseOneCert(a.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || root.NotAfter.Sub(root.NotBefore) < RootTTL {
		t.Errorf("root IsCA=%v lifetime=%v", root.IsCA, root.NotAfter.Sub(root.NotBefore))
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}

	b, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RootPEM(), b.RootPEM()) {
		t.Fatal("reload produced a different root")
	}
	id := testID
	id.TrustDomain = "example.org"
	chain, err := b.Sign(newCSR(t, elliptic.P256()), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseChain(t, chain)[0].Verify(x509.VerifyOptions{Roots: a.Roots()}); err != nil {
		t.Errorf("leaf from reloaded CA does not verify to original root: %v", err)
	}
}

func TestLoadPluggedIntermediate(t *testing.T) {
	rootCert, rootKey, err := GenerateRoot("cluster.local", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	interCert, interKey := newIntermediate(t, rootCert, rootKey)
	dir := t.TempDir()
	files := map[string][]byte{
		FileCACert: interCert, FileCAKey: interKey, FileRootCert: rootCert,
		FileCertChain: append(append([]byte(nil), interCert...), rootCert...), // as Istio's Makefile builds it
	}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(dir, n), d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err := LoadOrCreate(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := a.Sign(newCSR(t, elliptic.P256()), testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if len(certs) != 3 || !bytes.Equal(certPEM(certs[1].Raw), interCert) || !bytes.Equal(certPEM(certs[2].Raw), rootCert) {
		t.Fatalf("chain = %d certs, want leaf, intermediate, root", len(certs))
	}
	opts := x509.VerifyOptions{Roots: a.Roots(), Intermediates: a.Intermediates()}
	if _, err := certs[0].Verify(opts); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	sc, err := a.ServingCertificate([]string{"istiod.istio-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Certificate) != 2 {
		t.Errorf("serving chain has %d certs, want leaf + intermediate", len(sc.Certificate))
	}
}

func TestLoadOrCreateRejects(t *testing.T) {
	rootCert, rootKey, _ := GenerateRoot("cluster.local", time.Now(), 24*time.Hour)
	otherCert, otherKey, _ := GenerateRoot("cluster.local", time.Now(), 24*time.Hour)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
	}{
		{"partial layout", map[string][]byte{FileCACert: rootCert, FileCAKey: rootKey}},
		{"key does not match cert", map[string][]byte{
			FileCACert: rootCert, FileCAKey: otherKey, FileRootCert: rootCert, FileCertChain: rootCert}},
		{"cert does not chain to root", map[string][]byte{
			FileCACert: rootCert, FileCAKey: rootKey, FileRootCert: otherCert, FileCertChain: rootCert}},
		{"garbage key", map[string][]byte{
			FileCACert: rootCert, FileCAKey: []byte("nope"), FileRootCert: rootCert, FileCertChain: rootCert}},
		{"empty root", map[string][]byte{
			FileCACert: rootCert, FileCAKey: rootKey, FileRootCert: nil, FileCertChain: rootCert}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, d := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), d, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := LoadOrCreate(dir, ""); !errors.Is(err, ErrInvalidKeyMaterial) {
				t.Fatalf("LoadOrCreate err = %v, want ErrInvalidKeyMaterial", err)
			}
			if len(tc.files) < 4 {
				if _, err := os.Stat(filepath.Join(dir, FileRootCert)); err == nil {
					t.Error("partial layout was overwritten")
				}
			}
		})
	}
}
