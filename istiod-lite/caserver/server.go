// Package caserver is istiod-lite's certificate service: Istio's gRPC
// istio.v1.auth.IstioCertificateService/CreateCertificate, so Ambit's and Istio's
// ztunnels can fetch workload certificates from it. It authenticates callers (TLS client
// certificate or bearer token), lets trusted node accounts impersonate identities of
// pods on their node, and signs with pkg/ca.
package caserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Config configures a Server. Authority is required (without it every request fails
// with FailedPrecondition); everything else has a default.
type Config struct {
	// Authority signs the certificates and anchors client-certificate authentication.
	Authority *ca.Authority
	// Tokens authenticates bearer tokens; nil accepts no token.
	Tokens *Tokens
	// Authenticators are tried after the client-certificate and token authenticators
	// (e.g. a Kubernetes TokenReview authenticator).
	Authenticators []Authenticator
	// ClusterID is the cluster this control plane serves; requests' "clusterid"
	// metadata must equal it. "" means wire.DefaultClusterID ("Kubernetes").
	ClusterID string
	// TrustedNodeAccounts may impersonate identities of pods on their node; nil means
	// istio-system/ztunnel (Istio's CA_TRUSTED_NODE_ACCOUNTS default). An empty trust
	// domain means the authority's.
	TrustedNodeAccounts []spiffe.Identity
	// IdentitiesOnNode returns the identities of the pods scheduled on node; nil denies
	// all impersonation.
	IdentitiesOnNode func(node string) []spiffe.Identity
	// MaxTTL caps the requested validity; zero means ca.DefaultMaxTTL (24h).
	MaxTTL time.Duration
	// Logger receives one record per request; nil discards.
	Logger *slog.Logger
}

// Server implements IstioCertificateServiceServer. Build it with New.
type Server struct {
	pb.UnimplementedIstioCertificateServiceServer

	cfg         Config
	authns      []Authenticator
	trustedNode []spiffe.Identity
	clusterID   string
	maxTTL      time.Duration
	log         *slog.Logger
}

// New builds a Server from cfg, filling defaults. It does not start anything.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, clusterID: cfg.ClusterID, maxTTL: cfg.MaxTTL, log: cfg.Logger}
	if s.clusterID == "" {
		s.clusterID = wire.DefaultClusterID
	}
	if s.maxTTL <= 0 {
		s.maxTTL = ca.DefaultMaxTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Authority == nil {
		return s // CreateCertificate refuses every request
	}
	td := cfg.Authority.TrustDomain()
	s.trustedNode = normalizeAccounts(cfg.TrustedNodeAccounts, td)
	s.authns = append([]Authenticator{
		CertAuthenticator{Authority: cfg.Authority},
		TokenAuthenticator{Tokens: cfg.Tokens, TrustDomain: td},
	}, cfg.Authenticators...)
	return s
}

// Register adds the certificate service to g.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate signs req.Csr for the caller's identity, or the impersonated one.
// Codes: FailedPrecondition (no Authority), Unauthenticated (no valid credential), PermissionDenied (impersonation or
// cluster not allowed), InvalidArgument (bad CSR, CSR SAN not the issued identity, bad
// impersonated identity), Internal (signing failed). The validity is
// req.ValidityDuration seconds, capped at MaxTTL (<= 0 means MaxTTL). The response's
// cert_chain is leaf first, root last, one PEM certificate per element, as Istio's CA.
func (s *Server) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	log := s.log.With("peer", peerAddr(ctx))
	if s.cfg.Authority == nil {
		log.Error("certificate request refused: no certificate authority configured")
		return nil, status.Error(codes.FailedPrecondition, "no certificate authority configured")
	}
	caller, err := authenticate(ctx, s.authns)
	if err != nil {
		log.Warn("certificate request unauthenticated", "err", err)
		return nil, status.Errorf(codes.Unauthenticated, "authenticate: %v", err)
	}
	log = log.With("caller", caller.String())
	id, err := s.requestedIdentity(ctx, caller, req)
	if err != nil {
		log.Warn("certificate request refused", "err", err)
		return nil, err
	}
	ttl := s.ttl(req.GetValidityDuration())
	chain, err := s.cfg.Authority.Sign([]byte(req.GetCsr()), id, ttl)
	if err != nil {
		log.Warn("certificate request not signed", "identity", id.String(), "err", err)
		return nil, status.Error(signCode(err), err.Error())
	}
	log.Info("certificate issued", "identity", id.String(), "ttl", ttl)
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}

// ttl converts the request's validity in seconds, capped at MaxTTL without overflow.
func (s *Server) ttl(seconds int64) time.Duration {
	if seconds <= 0 || seconds > int64(s.maxTTL/time.Second) || seconds > math.MaxInt64/int64(time.Second) {
		return s.maxTTL
	}
	return time.Duration(seconds) * time.Second
}

func signCode(err error) codes.Code {
	switch {
	case errors.Is(err, ca.ErrInvalidCSR), errors.Is(err, ca.ErrIdentityMismatch), errors.Is(err, spiffe.ErrInvalidID):
		return codes.InvalidArgument
	case errors.Is(err, ca.ErrForeignTrustDomain):
		return codes.PermissionDenied
	}
	return codes.Internal
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// ServerTLSConfig returns a TLS config for istiod-lite's gRPC listener (port 15012): it
// presents cert and asks for, without requiring, a client certificate verified against
// roots, so both certificate and token callers are served. TLS 1.2 minimum.
func ServerTLSConfig(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS12,
	}
}
