// Package caclient fetches workload certificates from an Istio-compatible CA
// (istio.v1.auth.IstioCertificateService, served by istiod-lite or istiod) and keeps them
// fresh: Client does one request, Manager caches per identity and rotates at half life,
// as Istio's ztunnel does.
package caclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// DefaultTTL is the validity Client asks for when Config.TTL is zero (Istio's default).
const DefaultTTL = 24 * time.Hour

// Config configures a Client.
type Config struct {
	// Address is the CA's gRPC target, e.g. "istiod.istio-system.svc:15012".
	Address string
	// TLS secures the connection; nil means plaintext (tests and local runs only). To
	// authenticate by client certificate, set GetClientCertificate or Certificates.
	TLS *tls.Config
	// Token returns the bearer token sent as "authorization: Bearer <token>" on each
	// request (e.g. reads the projected service account token); nil or "" sends none.
	Token func() (string, error)
	// ClusterID is sent as "clusterid" metadata; "" means wire.DefaultClusterID.
	ClusterID string
	// TTL is the requested validity; zero means DefaultTTL. The CA may shorten it.
	TTL time.Duration
	// Now is the clock used to check the returned chain; nil means time.Now.
	Now func() time.Time
	// Dial, when set, makes the connection to Address (e.g. from inside a network
	// namespace); nil uses gRPC's own dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Client requests certificates from the CA over one gRPC connection. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	rpc  pb.IstioCertificateServiceClient
}

// New builds a Client for cfg.Address. The connection is made lazily on first Fetch;
// an error means the address or configuration is unusable.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("new ca client: no address")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = wire.DefaultClusterID
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if cfg.Dial != nil {
		opts = append(opts, grpc.WithContextDialer(cfg.Dial))
	}
	conn, err := grpc.NewClient(cfg.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("new ca client: %w", err)
	}
	return &Client{cfg: cfg, conn: conn, rpc: pb.NewIstioCertificateServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Fetch generates an ECDSA P-256 key and a CSR whose one URI SAN is id, and asks the CA
// to sign it. With impersonate, the request carries ImpersonatedIdentity = id in the
// request's metadata struct (where Istio's ztunnel puts it), for a node proxy asking on
// behalf of a pod. The returned chain must be for id and the new key and verify to its
// last certificate; otherwise the error wraps ErrInvalidChain. gRPC errors are wrapped
// (status.Code still reports their code).
func (c *Client) Fetch(ctx context.Context, id spiffe.Identity, impersonate bool) (*Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate: create csr: %w", err)
	}
	md := metadata.Pairs(wire.MetadataClusterID, c.cfg.ClusterID)
	if c.cfg.Token != nil {
		tok, err := c.cfg.Token()
		if err != nil {
			return nil, fmt.Errorf("fetch certificate: token: %w", err)
		}
		if tok != "" {
			md.Set("authorization", "Bearer "+tok)
		}
	}
	req := &pb.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		ValidityDuration: int64(c.cfg.TTL / time.Second),
	}
	if impersonate {
		req.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{
			wire.MetadataImpersonatedIdentity: structpb.NewStringValue(id.String()),
		}}
	}
	resp, err := c.rpc.CreateCertificate(metadata.NewOutgoingContext(ctx, md), req)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate for %s: %w", id, err)
	}
	cert, err := newCertificate(resp.GetCertChain(), key, id, c.now())
	if err != nil {
		return nil, fmt.Errorf("fetch certificate for %s: %w", id, err)
	}
	return cert, nil
}

func (c *Client) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}
