package caserver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ErrNoCredentials is returned by an Authenticator when the request carries none of the
// credentials it understands, so the next Authenticator is tried. Any other error means
// credentials were presented and rejected.
var ErrNoCredentials = errors.New("no credentials")

// Caller is an authenticated CA client.
type Caller struct {
	Identity spiffe.Identity // who the caller is
	Node     string          // node the caller runs on; "" when the credential does not say
	Method   string          // how it was authenticated, for logs: "certificate", "token"
}

// Authenticator authenticates the caller of an RPC from its context (peer and incoming
// metadata). It returns an error wrapping ErrNoCredentials when its kind of credential
// is absent. Implementations must be safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context) (*Caller, error)
}

// CertAuthenticator authenticates callers by the TLS client certificate of the gRPC
// connection: it must verify to the authority's roots for client auth and carry one
// SPIFFE URI SAN in the authority's trust domain. The caller has no node. Istio's CA
// accepts the same (its client-certificate authenticator).
type CertAuthenticator struct {
	Authority *ca.Authority
}

// Authenticate implements Authenticator.
func (c CertAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, ErrNoCredentials
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, ErrNoCredentials
	}
	certs := info.State.PeerCertificates
	inter := c.Authority.Intermediates()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: c.Authority.Roots(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	id, err := spiffe.FromCertificate(certs[0])
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if id.TrustDomain != c.Authority.TrustDomain() {
		return nil, fmt.Errorf("client certificate: %w: %s", ca.ErrForeignTrustDomain, id)
	}
	return &Caller{Identity: id, Method: "certificate"}, nil
}

// TokenAuthenticator authenticates callers by gRPC metadata "authorization: Bearer
// <token>" (the header Istio's CA clients send) looked up in Tokens. The identity is
// the token's service account in TrustDomain; the node is the token's node=.
type TokenAuthenticator struct {
	Tokens      *Tokens
	TrustDomain string
}

// Authenticate implements Authenticator.
// A nil Tokens understands no token (ErrNoCredentials), leaving bearer tokens to the
// authenticators after it.
func (t TokenAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	if t.Tokens == nil {
		return nil, fmt.Errorf("token: %w: no tokens file", ErrNoCredentials)
	}
	token, err := bearerToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	e, ok := t.Tokens.Lookup(token)
	if !ok {
		return nil, errors.New("token: unknown token")
	}
	id := spiffe.Identity{TrustDomain: t.TrustDomain, Namespace: e.Namespace, ServiceAccount: e.ServiceAccount}
	return &Caller{Identity: id, Node: e.Node, Method: "token"}, nil
}

// bearerToken returns the token of the request's one "authorization: Bearer <token>"
// metadata value (the header Istio's CA clients send). The error wraps ErrNoCredentials
// when there is no authorization metadata.
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", ErrNoCredentials
	}
	if len(vals) > 1 {
		return "", errors.New("several authorization headers")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", errors.New("authorization is not \"Bearer <token>\"")
	}
	return token, nil
}

// authenticate returns the first caller any authenticator accepts; otherwise an error
// listing why presented credentials were rejected.
func authenticate(ctx context.Context, authns []Authenticator) (*Caller, error) {
	var errs []error
	for _, a := range authns {
		c, err := a.Authenticate(ctx)
		switch {
		case err == nil && c != nil:
			return c, nil
		case err == nil, errors.Is(err, ErrNoCredentials):
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no client certificate or bearer token")
	}
	return nil, errors.Join(errs...)
}
