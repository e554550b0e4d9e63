package forward

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Files are the PEM files a forwarder is given: --cert (chain, leaf first), --key
// (PKCS#8) and --root.
type Files struct {
	Cert, Key, Root string
}

// Args is the files as forwarder flags.
func (f Files) Args() []string {
	return []string{"--cert", f.Cert, "--key", f.Key, "--root", f.Root}
}

// IssueFiles issues a workload certificate for id from a the way ztunnel obtains one
// (a fresh ECDSA P-256 key, a CSR with the identity as its URI SAN, a.Sign with ttl)
// and writes cert.pem, key.pem and root.pem (a's root) into dir, which it creates.
func IssueFiles(a *ca.Authority, id spiffe.Identity, ttl time.Duration, dir string) (Files, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("issue %s: %w", id, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return Files{}, fmt.Errorf("issue %s: %w", id, err)
	}
	chain, err := a.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, ttl)
	if err != nil {
		return Files{}, fmt.Errorf("issue %s: %w", id, err)
	}
	var certPEM bytes.Buffer
	for _, c := range chain {
		certPEM.WriteString(c)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Files{}, fmt.Errorf("issue %s: %w", id, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("issue %s: %w", id, err)
	}
	f := Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Root: filepath.Join(dir, "root.pem")}
	for path, data := range map[string][]byte{
		f.Cert: certPEM.Bytes(),
		f.Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		f.Root: a.RootPEM(),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return Files{}, fmt.Errorf("issue %s: %w", id, err)
		}
	}
	return f, nil
}
