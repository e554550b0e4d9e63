package envoy

import (
	"encoding/pem"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// Secrets is the waypoint's TLS material, all PEM: CertChainPEM is the leaf first (then
// intermediates), KeyPEM its private key, RootPEM the mesh root certificates. They become
// the SDS secrets "default" and "ROOTCA" (waypointxds.SecretDefault, SecretRootCA).
type Secrets struct {
	CertChainPEM []byte
	KeyPEM       []byte
	RootPEM      []byte
}

// Empty reports whether no secret material is set.
func (s Secrets) Empty() bool {
	return len(s.CertChainPEM) == 0 && len(s.KeyPEM) == 0 && len(s.RootPEM) == 0
}

// SecretResources returns the SDS secrets "ROOTCA" then "default" (sorted by
// name), as built by waypointxds.RootCASecret and waypointxds.DefaultSecret. Each field
// must hold at least one PEM block, else the error wraps ErrInvalidSecrets.
func SecretResources(s Secrets) ([]*tlsv3.Secret, error) {
	for _, f := range []struct {
		name string
		pem  []byte
	}{{"cert chain", s.CertChainPEM}, {"private key", s.KeyPEM}, {"root", s.RootPEM}} {
		if b, _ := pem.Decode(f.pem); b == nil {
			return nil, fmt.Errorf("secret resources: %s: %w: no PEM block", f.name, ErrInvalidSecrets)
		}
	}
	return []*tlsv3.Secret{waypointxds.RootCASecret(s.RootPEM), waypointxds.DefaultSecret(s.CertChainPEM, s.KeyPEM)}, nil
}
