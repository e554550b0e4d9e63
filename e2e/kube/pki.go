package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long every generated certificate is valid; a test cluster
// lives minutes, the margin covers clock skew and long debugging sessions.
const certValidity = 7 * 24 * time.Hour

// ServiceCIDR is the service cluster IP range given to kube-apiserver; the default
// "kubernetes" Service takes its first address, KubernetesServiceIP.
const ServiceCIDR = "10.96.0.0/16"

// KubernetesServiceIP is the cluster IP of the default "kubernetes" Service in ServiceCIDR.
const KubernetesServiceIP = "10.96.0.1"

// pki holds the generated certificate authority and the paths of every file written
// under dir: PEM certificates, PKCS#8 private keys (mode 0600) and the service-account
// signing key pair.
type pki struct {
	dir   string
	ca    *x509.Certificate
	caKey crypto.Signer
	caPEM []byte
}

// certSpec describes one leaf certificate signed by the cluster CA.
type certSpec struct {
	name   string // file stem: <name>.crt and <name>.key
	cn     string
	orgs   []string
	server bool // server auth (with SANs) rather than client auth
	dns    []string
	ips    []net.IP
}

// leaf is a written certificate: its PEM bytes and file paths.
type leaf struct {
	certPEM, keyPEM   []byte
	certFile, keyFile string
}

// newPKI creates a self-signed ECDSA P-256 CA and writes ca.crt and ca.key to dir.
func newPKI(dir string) (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ambit-e2e-kube-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	p := &pki{dir: dir, ca: ca, caKey: key, caPEM: pemBlock("CERTIFICATE", der)}
	if err := p.writeKeyPair("ca", p.caPEM, key); err != nil {
		return nil, err
	}
	return p, nil
}

// caFile is the path of the CA certificate.
func (p *pki) caFile() string { return filepath.Join(p.dir, "ca.crt") }

// issue creates a key and a CA-signed certificate as spec says and writes both.
func (p *pki) issue(spec certSpec) (*leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", spec.name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
	}
	if spec.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		return nil, fmt.Errorf("create %s certificate: %w", spec.name, err)
	}
	certPEM := pemBlock("CERTIFICATE", der)
	if err := p.writeKeyPair(spec.name, certPEM, key); err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(p.dir, spec.name+".key"))
	if err != nil {
		return nil, fmt.Errorf("read %s key: %w", spec.name, err)
	}
	return &leaf{
		certPEM: certPEM, keyPEM: keyPEM,
		certFile: filepath.Join(p.dir, spec.name+".crt"),
		keyFile:  filepath.Join(p.dir, spec.name+".key"),
	}, nil
}

// serviceAccountKeys writes sa.key (PKCS#8 ECDSA P-256 private key, for
// --service-account-signing-key-file) and sa.pub (PKIX public key, for
// --service-account-key-file) and returns their paths.
func (p *pki) serviceAccountKeys() (keyFile, pubFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate service account key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("marshal service account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", fmt.Errorf("marshal service account public key: %w", err)
	}
	keyFile, pubFile = filepath.Join(p.dir, "sa.key"), filepath.Join(p.dir, "sa.pub")
	if err := os.WriteFile(keyFile, pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return "", "", fmt.Errorf("write service account key: %w", err)
	}
	if err := os.WriteFile(pubFile, pemBlock("PUBLIC KEY", pubDER), 0o644); err != nil {
		return "", "", fmt.Errorf("write service account public key: %w", err)
	}
	return keyFile, pubFile, nil
}

// writeKeyPair writes <name>.crt (0644) and <name>.key (PKCS#8, 0600).
func (p *pki) writeKeyPair(name string, certPEM []byte, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal %s key: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, name+".crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("write %s certificate: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, name+".key"), pemBlock("PRIVATE KEY", der), 0o600); err != nil {
		return fmt.Errorf("write %s key: %w", name, err)
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serial returns a random 127-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on Linux (it panics inside the runtime first).
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
