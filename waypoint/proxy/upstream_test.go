package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

func TestVerifyServer(t *testing.T) {
	ca, err := envoytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := envoytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(ca *envoytest.CA, td string) []*x509.Certificate {
		l, err := ca.Issue(spiffe.Identity{TrustDomain: td, Namespace: "demo", ServiceAccount: "reviews"})
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{l.TLS.Leaf}
	}
	tests := []struct {
		name  string
		certs []*x509.Certificate
		alpn  string
		ok    bool
	}{
		{"mesh peer", leaf(ca, "cluster.local"), "h2", true},
		{"other trust domain", leaf(ca, "evil.local"), "h2", false},
		{"other root", leaf(other, "cluster.local"), "h2", false},
		{"no certificate", nil, "h2", false},
		{"no h2", leaf(ca, "cluster.local"), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyServer(tls.ConnectionState{PeerCertificates: tc.certs, NegotiatedProtocol: tc.alpn}, ca.Pool, "cluster.local")
			if (err == nil) != tc.ok {
				t.Fatalf("verifyServer = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
