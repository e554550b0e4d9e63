// Package spiffe parses, formats and verifies the SPIFFE identities Ambit uses for
// workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, as Istio does.
package spiffe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is the trust domain used when none is configured, as in Istio.
const DefaultTrustDomain = "cluster.local"

// ErrInvalidID is returned (wrapped) for any URI that is not an Istio-shaped SPIFFE ID.
var ErrInvalidID = errors.New("invalid spiffe id")

// Identity is a workload identity: the service account of a namespace in a trust domain.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String formats the identity as spiffe://<td>/ns/<ns>/sa/<sa>.
func (id Identity) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// URL returns the identity as a URL, for a certificate's URI SAN.
func (id Identity) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// IsZero reports whether the identity is unset.
func (id Identity) IsZero() bool { return id == Identity{} }

// Parse parses spiffe://<td>/ns/<ns>/sa/<sa>. It returns an error wrapping ErrInvalidID
// for any other shape (other scheme, missing parts, extra path segments, query, fragment).
func Parse(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return Identity{}, fmt.Errorf("parse %q: %w: scheme is not spiffe", s, ErrInvalidID)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return Identity{}, fmt.Errorf("parse %q: %w: want spiffe://<td>/ns/<ns>/sa/<sa>", s, ErrInvalidID)
	}
	id := Identity{TrustDomain: parts[0], Namespace: parts[2], ServiceAccount: parts[4]}
	for _, p := range []string{id.TrustDomain, id.Namespace, id.ServiceAccount} {
		if p == "" || strings.ContainsAny(p, "?#%@: ") {
			return Identity{}, fmt.Errorf("parse %q: %w: empty or illegal segment", s, ErrInvalidID)
		}
	}
	return id, nil
}

// FromCertificate returns the identity in a certificate's single URI SAN. Certificates
// with no URI SAN, several, or a non-SPIFFE one are rejected with an error wrapping
// ErrInvalidID.
func FromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("identity from certificate: %w: no certificate", ErrInvalidID)
	}
	if len(cert.URIs) != 1 {
		return Identity{}, fmt.Errorf("identity from certificate: %w: want one URI SAN, have %d", ErrInvalidID, len(cert.URIs))
	}
	return Parse(cert.URIs[0].String())
}
