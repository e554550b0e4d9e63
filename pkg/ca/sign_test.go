package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

var (
	testID  = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	oidSAN  = asn1.ObjectIdentifier{2, 5, 29, 17}
	fixedT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// newCSR returns a PEM CSR over a fresh key on curve with the given URI SANs.
func newCSR(t *testing.T, curve elliptic.Curve, uris ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return csrFor(t, key, uris...)
}

func csrFor(t *testing.T, key crypto.Signer, uris ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func newTestAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	a.Now = func() time.Time { return fixedT0 }
	return a
}

func parseChain(t *testing.T, chain []string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for i, s := range chain {
		certs, err := parseCerts([]byte(s))
		if err != nil || len(certs) != 1 {
			t.Fatalf("chain[%d]: %d certs, err %v", i, len(certs), err)
		}
		out = append(out, certs[0])
	}
	return out
}

func TestSignLeafShape(t *testing.T) {
	a := newTestAuthority(t)
	chain, err := a.Sign(newCSR(t, elliptic.P256(), testID.String()), testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if len(certs) != 2 {
		t.Fatalf("chain has %d certs, want leaf + root", len(certs))
	}
	leaf, root := certs[0], certs[1]
	if !bytes.Equal(certPEM(root.Raw), a.RootPEM()) {
		t.Error("last chain element is not the root")
	}
	if len(leaf.Subject.Names) != 0 || !bytes.Equal(leaf.RawSubject, []byte{0x30, 0}) {
		t.Errorf("subject = %q, want empty", leaf.Subject)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != testID.String() {
		t.Errorf("URIs = %v, want [%s]", leaf.URIs, testID)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Error("leaf has SANs other than the identity")
	}
	var critical bool
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidSAN) {
			critical = e.Critical
		}
	}
	if !critical {
		t.Error("URI SAN extension is not critical")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("KeyUsage = %v", leaf.KeyUsage)
	}
	want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != want[0] || leaf.ExtKeyUsage[1] != want[1] {
		t.Errorf("ExtKeyUsage = %v, want %v", leaf.ExtKeyUsage, want)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.Roots(), CurrentTime: fixedT0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify to root: %v", err)
	}
	if id, err := spiffe.FromCertificate(leaf); err != nil || id != testID {
		t.Errorf("FromCertificate = %v, %v", id, err)
	}
}

func TestSignTTL(t *testing.T) {
	a := newTestAuthority(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"requested", 2 * time.Hour, 2 * time.Hour},
		{"zero means max", 0, DefaultMaxTTL},
		{"negative means max", -time.Hour, DefaultMaxTTL},
		{"capped at max", 72 * time.Hour, DefaultMaxTTL},
		{"raised to min", 5 * time.Second, MinTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := a.Sign(newCSR(t, elliptic.P256()), testID, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			leaf := parseChain(t, chain)[0]
			if !leaf.NotBefore.Equal(fixedT0.Add(-time.Minute)) {
				t.Errorf("NotBefore = %v, want now-1m", leaf.NotBefore)
			}
			if !leaf.NotAfter.Equal(fixedT0.Add(tc.want)) {
				t.Errorf("NotAfter = %v, want now+%v", leaf.NotAfter, tc.want)
			}
		})
	}
	t.Run("custom max", func(t *testing.T) {
		b := *a
		b.MaxTTL = time.Hour
		chain, err := b.Sign(newCSR(t, elliptic.P256()), testID, 3*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseChain(t, chain)[0].NotAfter; !got.Equal(fixedT0.Add(time.Hour)) {
			t.Errorf("NotAfter = %v, want now+1h", got)
		}
	})
}

func TestSignNeverOutlivesCA(t *testing.T) {
	certPEMBytes, keyPEMBytes, err := GenerateRoot("cluster.local", time.Now(), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(certPEMBytes, keyPEMBytes, nil, certPEMBytes, "")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := a.Sign(newCSR(t, elliptic.P256()), testID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if !certs[0].NotAfter.Equal(certs[1].NotAfter) {
		t.Errorf("leaf NotAfter %v outlives root %v", certs[0].NotAfter, certs[1].NotAfter)
	}
}

func TestSignRejects(t *testing.T) {
	a := newTestAuthority(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tampered := csrFor(t, key, testID.String())
	b, _ := pem.Decode(tampered)
	b.Bytes[len(b.Bytes)-3] ^= 0xff // corrupt the signature
	other := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "server"}
	for _, tc := range []struct {
		name string
		csr  []byte
		id   spiffe.Identity
		want error
	}{
		{"other identity in csr", newCSR(t, elliptic.P256(), other.String()), testID, ErrIdentityMismatch},
		{"two identities in csr", newCSR(t, elliptic.P256(), testID.String(), other.String()), testID, ErrIdentityMismatch},
		{"non-spiffe uri in csr", newCSR(t, elliptic.P256(), "https://example.com/x"), testID, ErrIdentityMismatch},
		{"not pem", []byte("hello"), testID, ErrInvalidCSR},
		{"wrong pem type", certPEM([]byte{1, 2, 3}), testID, ErrInvalidCSR},
		{"bad signature", pem.EncodeToMemory(b), testID, ErrInvalidCSR},
		{"weak curve", newCSR(t, elliptic.P224()), testID, ErrInvalidCSR},
		{"foreign trust domain", newCSR(t, elliptic.P256()),
			spiffe.Identity{TrustDomain: "other.td", Namespace: "a", ServiceAccount: "b"}, ErrForeignTrustDomain},
		{"zero identity", newCSR(t, elliptic.P256()), spiffe.Identity{}, spiffe.ErrInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := a.Sign(tc.csr, tc.id, time.Hour)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Sign = %d certs, err %v; want %v", len(chain), err, tc.want)
			}
		})
	}
}

func TestServingCertificate(t *testing.T) {
	a := newTestAuthority(t)
	tc, err := a.ServingCertificate([]string{"istiod.istio-system.svc", "127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"istiod.istio-system.svc", "127.0.0.1"} {
		_, err := tc.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: a.Roots(), CurrentTime: fixedT0})
		if err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if !tc.Leaf.NotAfter.Equal(fixedT0.Add(DefaultServingTTL)) {
		t.Errorf("NotAfter = %v", tc.Leaf.NotAfter)
	}
	if _, err := a.ServingCertificate(nil, time.Hour); err == nil {
		t.Error("no names accepted")
	}
}

// newIntermediate returns an intermediate CA (PEM cert, PEM key) signed by the root in
// rootCert/rootKey.
func newIntermediate(t *testing.T, rootCert, rootKey []byte) ([]byte, []byte) {
	t.Helper()
	root, err := parseOneCert(rootCert)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := parseKey(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big1(), Subject: pkix.Name{CommonName: "intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	der8, _ := x509.MarshalECPrivateKey(key)
	return certPEM(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der8})
}
