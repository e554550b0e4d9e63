package spiffe

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	id := Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	got, err := Parse(id.String())
	if err != nil || got != id {
		t.Fatalf("Parse(%q) = %v, %v", id.String(), got, err)
	}
	if id.URL().String() != id.String() {
		t.Fatalf("URL %q != String %q", id.URL(), id.String())
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "http://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a",
		"spiffe://cluster.local/ns/a/sa/b/extra", "spiffe://cluster.local/sa/a/ns/b",
		"spiffe:///ns/a/sa/b", "spiffe://td/ns//sa/b", "spiffe://td/ns/a/sa/b?x=1",
	} {
		if _, err := Parse(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Parse(%q) err = %v, want ErrInvalidID", s, err)
		}
	}
}

func TestFromCertificate(t *testing.T) {
	u, _ := url.Parse("spiffe://td/ns/a/sa/b")
	if id, err := FromCertificate(&x509.Certificate{URIs: []*url.URL{u}}); err != nil || id.ServiceAccount != "b" {
		t.Fatalf("FromCertificate = %v, %v", id, err)
	}
	if _, err := FromCertificate(&x509.Certificate{URIs: []*url.URL{u, u}}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("two SANs accepted: %v", err)
	}
	if _, err := FromCertificate(&x509.Certificate{}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("no SAN accepted: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("spiffe://cluster.local/ns/a/sa/b")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err == nil && id.String() != s {
			t.Fatalf("Parse(%q) accepted but formats as %q", s, id.String())
		}
	})
}
