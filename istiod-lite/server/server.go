// Package server composes istiod-lite: the file config source, the workload model, the
// delta xDS (WDS) server and the CA, served on gRPC (TLS on 15012, optionally plaintext
// on 15010) plus a monitoring endpoint on 15014.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/istiod-lite/xds"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Config is istiod-lite's configuration; flags map onto it one to one.
type Config struct {
	ConfigDir         string
	CADir             string
	TrustDomain       string
	ClusterID         string
	GRPCAddr          string   // TLS: xDS + CA
	GRPCPlaintextAddr string   // optional plaintext xDS + CA
	TLSDNSNames       []string // serving certificate names
	TokensFile        string
	MonitoringAddr    string
	Logger            *slog.Logger
}

// servingCertTTL is the lifetime of istiod-lite's own TLS certificate; it is reissued
// at half life.
const servingCertTTL = 24 * time.Hour

// Run serves until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	authority, err := ca.LoadOrCreate(cfg.CADir, cfg.TrustDomain)
	if err != nil {
		return fmt.Errorf("load ca: %w", err)
	}
	var tokens *caserver.Tokens
	if cfg.TokensFile != "" {
		if tokens, err = caserver.LoadTokens(cfg.TokensFile); err != nil {
			return fmt.Errorf("load tokens: %w", err)
		}
	}
	var current atomic.Pointer[model.Model]
	opts := model.Options{ClusterID: cfg.ClusterID, TrustDomain: cfg.TrustDomain}
	current.Store(model.Build(&kubefile.Snapshot{}, opts))
	caSrv := caserver.New(caserver.Config{
		Authority: authority, Tokens: tokens, ClusterID: cfg.ClusterID, Logger: log,
		IdentitiesOnNode: func(node string) []spiffe.Identity { return current.Load().IdentitiesOnNode(node) },
	})
	xdsSrv := xds.New(log)
	var synced atomic.Bool
	watcher := &kubefile.Watcher{Dir: cfg.ConfigDir, Logger: log, OnChange: func(s *kubefile.Snapshot) {
		m := model.Build(s, opts)
		current.Store(m)
		xdsSrv.Update(m)
		synced.Store(true)
		log.Info("config applied", "pods", len(s.Pods), "services", len(s.Services), "namespaces", len(s.Namespaces))
	}}

	serving := &servingCert{authority: authority, names: cfg.TLSDNSNames}
	tlsCfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: serving.get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      authority.Roots(),
	}
	newGRPC := func(opt ...grpc.ServerOption) *grpc.Server {
		g := grpc.NewServer(opt...)
		caSrv.Register(g)
		xdsSrv.Register(g)
		return g
	}
	servers := []struct {
		addr string
		srv  *grpc.Server
	}{{cfg.GRPCAddr, newGRPC(grpc.Creds(credentials.NewTLS(tlsCfg)))}}
	if cfg.GRPCPlaintextAddr != "" {
		servers = append(servers, struct {
			addr string
			srv  *grpc.Server
		}{cfg.GRPCPlaintextAddr, newGRPC()})
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return watcher.Run(gctx) })
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.addr, err)
		}
		g.Go(func() error { return s.srv.Serve(ln) })
		g.Go(func() error {
			<-gctx.Done()
			s.srv.GracefulStop()
			return nil
		})
		log.Info("serving xds and ca", "addr", ln.Addr().String())
	}
	if cfg.MonitoringAddr != "" {
		g.Go(func() error { return serveMonitoring(gctx, cfg.MonitoringAddr, &synced) })
	}
	return g.Wait()
}

func serveMonitoring(ctx context.Context, addr string, synced *atomic.Bool) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !synced.Load() {
			http.Error(w, "config not loaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("monitoring: %w", err)
	}
	return nil
}
