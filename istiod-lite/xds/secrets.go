package xds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ambitmesh/ambit/istiod-lite/envoy"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// DefaultWaypointCertTTL is the lifetime of a waypoint's certificate, as Istio's
// workload certificates (24h); it is re-minted after half of it.
const DefaultWaypointCertTTL = 24 * time.Hour

// CASecrets mints waypoint TLS material with the mesh CA: an ECDSA P-256 key generated
// here and a certificate for the identity (one URI SAN), kept per identity until half
// its life has passed. It implements SecretSource and is safe for concurrent use.
type CASecrets struct {
	Authority *ca.Authority
	TTL       time.Duration // 0: DefaultWaypointCertTTL
	Now       func() time.Time

	mu     sync.Mutex
	minted map[spiffe.Identity]mintedSecret
}

type mintedSecret struct {
	secrets envoy.Secrets
	renewAt time.Time
}

// Secrets returns id's current material, minting it when absent or past half its life.
func (c *CASecrets) Secrets(id spiffe.Identity) (envoy.Secrets, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.minted[id]; ok && now().Before(m.renewAt) {
		return m.secrets, nil
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultWaypointCertTTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return envoy.Secrets{}, fmt.Errorf("mint waypoint key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return envoy.Secrets{}, fmt.Errorf("mint waypoint csr: %w", err)
	}
	chain, err := c.Authority.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, ttl)
	if err != nil {
		return envoy.Secrets{}, fmt.Errorf("mint waypoint certificate: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return envoy.Secrets{}, fmt.Errorf("mint waypoint key: %w", err)
	}
	s := envoy.Secrets{
		CertChainPEM: []byte(strings.Join(chain[:max(1, len(chain)-1)], "")), // leaf and intermediates
		KeyPEM:       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		RootPEM:      c.Authority.RootPEM(),
	}
	if c.minted == nil {
		c.minted = map[spiffe.Identity]mintedSecret{}
	}
	c.minted[id] = mintedSecret{secrets: s, renewAt: now().Add(ttl / 2)}
	return s, nil
}
