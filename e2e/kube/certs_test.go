package kube

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
)

func TestGenerateCerts(t *testing.T) {
	cc, err := generateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cc.pki.ca)
	tests := []struct {
		name   string
		leaf   *leaf
		usage  x509.ExtKeyUsage
		host   string // verified name for serving certificates
		cn     string
		groups []string
	}{
		{name: "apiserver by ip", leaf: cc.apiserver, usage: x509.ExtKeyUsageServerAuth, host: "127.0.0.1", cn: "kube-apiserver"},
		{name: "apiserver by service name", leaf: cc.apiserver, usage: x509.ExtKeyUsageServerAuth, host: "kubernetes.default.svc", cn: "kube-apiserver"},
		{name: "apiserver by service ip", leaf: cc.apiserver, usage: x509.ExtKeyUsageServerAuth, host: KubernetesServiceIP, cn: "kube-apiserver"},
		{name: "admin", leaf: cc.admin, usage: x509.ExtKeyUsageClientAuth, cn: "kubernetes-admin", groups: []string{"system:masters"}},
		{name: "controller manager", leaf: cc.controllerManager, usage: x509.ExtKeyUsageClientAuth, cn: "system:kube-controller-manager"},
		{name: "controller manager serving", leaf: cc.controllerManagerServing, usage: x509.ExtKeyUsageServerAuth, host: "localhost", cn: "kube-controller-manager"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := tls.X509KeyPair(tc.leaf.certPEM, tc.leaf.keyPEM)
			if err != nil {
				t.Fatalf("key pair: %v", err)
			}
			cert := pair.Leaf
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if cert.Subject.CommonName != tc.cn || !slices.Equal(cert.Subject.Organization, tc.groups) {
				t.Fatalf("subject = %v, want CN %q O %v", cert.Subject, tc.cn, tc.groups)
			}
		})
	}
}

func TestStartWithoutBinaries(t *testing.T) {
	_, err := Start(t.Context(), Options{BinDir: t.TempDir(), Dir: t.TempDir()})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("Start with an empty BinDir = %v, want ErrNoBinaries", err)
	}
}
