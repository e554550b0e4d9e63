// Package app composes ztunnel: the WDS client and state, the certificate manager, the
// in-pod manager fed by the node agent over ZDS, and the admin/metrics/readiness
// endpoints. main only parses flags and calls Run.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/pkg/zds"
	"github.com/ambitmesh/ambit/ztunnel/admin"
	"github.com/ambitmesh/ambit/ztunnel/inpod"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
	"github.com/ambitmesh/ambit/ztunnel/proxy"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// Config is ztunnel's configuration; flags map onto it one to one (see
// /work/notes/contracts.md and the Helm chart).
type Config struct {
	NodeName      string
	XDSAddress    string // istiod-lite host:port
	CAAddress     string // defaults to XDSAddress
	XDSServerName string // TLS server name of istiod-lite; empty with RootCert empty = plaintext
	RootCertFile  string // mesh root PEM; empty = plaintext gRPC (local tests only)
	TokenFile     string // bearer token for the CA
	ClusterID     string
	TrustDomain   string
	ZDSSocket     string
	AdminAddr     string
	MetricsAddr   string
	ReadinessAddr string
	Logger        *slog.Logger
}

// Ztunnel is one node's ztunnel.
type Ztunnel struct {
	cfg   Config
	store *state.Store
	certs *caclient.Manager
	inpod *inpod.Manager
}

// Run starts every part and blocks until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config) error {
	if cfg.CAAddress == "" {
		cfg.CAAddress = cfg.XDSAddress
	}
	log := cfg.Logger
	creds, err := transportCredentials(cfg)
	if err != nil {
		return err
	}
	xdsConn, err := grpc.NewClient(cfg.XDSAddress, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial xds: %w", err)
	}
	defer xdsConn.Close()
	ca, err := caclient.New(caclient.Config{
		Address: cfg.CAAddress, TLS: tlsConfig(cfg), ClusterID: cfg.ClusterID,
		Token: func() (string, error) { return readToken(cfg.TokenFile) },
	})
	if err != nil {
		return fmt.Errorf("ca client: %w", err)
	}
	defer ca.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	z := &Ztunnel{cfg: cfg, store: state.New(), certs: caclient.NewManager(ca, true, nil)}
	certs := &certSource{m: z.certs, anchors: loadRoots(cfg.RootCertFile)}
	z.inpod = &inpod.Manager{
		TrustDomain: cfg.TrustDomain, Logger: log,
		Proxy: proxy.Config{
			Store: z.store, Router: &proxy.Router{Store: z.store}, Certs: certs,
			Metrics: metrics.New(reg), TrustDomain: cfg.TrustDomain, Logger: log,
		},
	}
	xds := delta.New(delta.Config{
		Conn:       xdsConn,
		Node:       &delta.Node{Id: "ztunnel~" + cfg.NodeName, Cluster: cfg.ClusterID},
		TypeURLs:   []string{state.TypeAddress, state.TypeAuthorization},
		Handler:    z.store,
		Logger:     log,
		Registerer: reg,
	})
	zdsClient := &zds.Client{Path: cfg.ZDSSocket, Handler: z.inpod, Logger: log}

	g, gctx := errgroup.WithContext(ctx)
	quit, stop := context.WithCancel(gctx)
	defer stop()
	srv := &admin.Server{
		AdminAddr: cfg.AdminAddr, MetricsAddr: cfg.MetricsAddr, ReadinessAddr: cfg.ReadinessAddr,
		Gatherer: reg, Dumper: z, Logger: log, Quit: stop,
		Ready: func() error {
			select {
			case <-xds.Synced():
				return nil
			default:
				return errors.New("workload discovery not synced")
			}
		},
	}
	g.Go(func() error { return xds.Run(quit) })
	g.Go(func() error { return z.certs.Run(quit) })
	g.Go(func() error { return z.inpod.Run(quit) })
	g.Go(func() error {
		// Take pods from the node agent only once WDS is known, so the first
		// connections already route correctly.
		select {
		case <-xds.Synced():
		case <-quit.Done():
			return nil
		}
		return zdsClient.Run(quit)
	})
	g.Go(func() error { return srv.Run(quit) })
	log.Info("ztunnel started", "node", cfg.NodeName, "xds", cfg.XDSAddress, "zds", cfg.ZDSSocket)
	return g.Wait()
}

func tlsConfig(cfg Config) *tls.Config {
	if cfg.RootCertFile == "" {
		return nil
	}
	pool := loadRoots(cfg.RootCertFile)
	if pool == nil {
		pool = x509.NewCertPool() // trusts nothing: fail closed
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: cfg.XDSServerName}
}

func transportCredentials(cfg Config) (credentials.TransportCredentials, error) {
	if cfg.RootCertFile == "" {
		return insecure.NewCredentials(), nil
	}
	if _, err := os.Stat(cfg.RootCertFile); err != nil {
		return nil, fmt.Errorf("read root cert: %w", err)
	}
	return credentials.NewTLS(tlsConfig(cfg)), nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func identityOf(c *x509.Certificate) string {
	id, err := spiffe.FromCertificate(c)
	if err != nil {
		return ""
	}
	return id.String()
}

// certSource adapts the certificate manager to what the proxies need.
type certSource struct {
	m       *caclient.Manager
	anchors *x509.CertPool // the configured mesh root; nil when none
}

func (c *certSource) TLSCertificate(ctx context.Context, id spiffe.Identity) (*tls.Certificate, error) {
	cert, err := c.m.Certificate(ctx, id)
	if err != nil {
		return nil, err
	}
	return cert.TLS, nil
}

// Roots returns the roots seen in CA responses, or the configured mesh root before the
// first certificate arrives (so a peer can be verified even then).
func (c *certSource) Roots() *x509.CertPool {
	if len(c.m.Snapshot()) > 0 || c.anchors == nil {
		return c.m.Roots()
	}
	return c.anchors
}

// loadRoots reads a PEM bundle; nil when path is empty or holds no certificate.
func loadRoots(path string) *x509.CertPool {
	if path == "" {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil
	}
	return pool
}
