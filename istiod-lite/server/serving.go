package server

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/ambitmesh/ambit/pkg/ca"
)

// servingCert issues istiod-lite's own TLS certificate from its CA and reissues it at
// half life.
type servingCert struct {
	authority *ca.Authority
	names     []string

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Now().Before(s.renewAt) {
		return s.cert, nil
	}
	cert, err := s.authority.ServingCertificate(s.names, servingCertTTL)
	if err != nil {
		return nil, err
	}
	s.cert, s.renewAt = cert, time.Now().Add(servingCertTTL/2)
	return cert, nil
}
