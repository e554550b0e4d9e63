// Package app wires the waypoint: the xDS client feeding configurations to the proxy,
// HBONE on 15008, and the admin, metrics and readiness endpoints. Run blocks until its
// context ends (or /quitquitquit) and leaves no goroutine behind.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/admin"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/proxy"
	"github.com/ambitmesh/ambit/waypoint/xds"
)

// Config is the waypoint's configuration (flags and environment of issue5.md
// section 1).
type Config struct {
	XDSAddress    string // istiod-lite "host:port"
	XDSServerName string // TLS server name of istiod-lite
	RootCert      string // mesh root PEM file; "" = plaintext xDS (local tests only)
	TokenFile     string // projected service account token (audience istio-ca)
	ClusterID     string
	TrustDomain   string // default "cluster.local"
	AdminAddr     string // default "127.0.0.1:15000"
	MetricsAddr   string // default ":15020"
	ReadinessAddr string // default ":15021"
	// HBONEAddr is where HBONE is terminated; default ":15008" (production must keep it).
	HBONEAddr string
	// Node is the pod's identity for the xDS node.
	Node xds.NodeInfo
	// Logger (default slog.Default()); AccessLog receives access log lines (default
	// os.Stdout), buffered and written every AccessLogFlushInterval (default 1 s,
	// Envoy's access_log_flush_interval) and when Run ends.
	Logger                 *slog.Logger
	AccessLog              io.Writer
	AccessLogFlushInterval time.Duration

	// Test seams: dialTunnel replaces the TCP dial of upstream tunnels (tests map
	// ip:15008 to their servers' ports); onListen reports each bound address.
	dialTunnel func(ctx context.Context, network, addr string) (net.Conn, error)
	onListen   func(name string, addr net.Addr)
}

func (c *Config) defaults() {
	if c.TrustDomain == "" {
		c.TrustDomain = "cluster.local"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:15000"
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = ":15020"
	}
	if c.ReadinessAddr == "" {
		c.ReadinessAddr = ":15021"
	}
	if c.HBONEAddr == "" {
		c.HBONEAddr = ":15008"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AccessLog == nil {
		c.AccessLog = os.Stdout
	}
	if c.Node.ClusterID == "" {
		c.Node.ClusterID = c.ClusterID
	}
}

// Run runs the waypoint until ctx ends or POST /quitquitquit, then stops everything
// and returns nil; a component failing (a port in use, a bad root certificate) is an
// error.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := proxy.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	px := proxy.New(proxy.Options{TrustDomain: cfg.TrustDomain, Metrics: metrics, Logger: cfg.Logger, Dial: cfg.dialTunnel})
	sink := accesslog.NewSink(cfg.AccessLog, cfg.AccessLogFlushInterval)
	// The sink outlives the proxy: it is stopped (and flushed) after every request
	// has finished, when Run returns.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		_ = sink.Run(sinkCtx)
	}()
	defer func() {
		stopSink()
		<-sinkDone
	}()
	ap := &applier{px: px, log: cfg.Logger, opts: config.Options{TrustDomain: cfg.TrustDomain, AccessLog: sink}}

	lns, err := listenAll(cfg)
	if err != nil {
		return err
	}
	conn, err := xds.Dial(cfg.XDSAddress, cfg.XDSServerName, cfg.RootCert)
	if err != nil {
		closeAll(lns)
		return err
	}
	defer conn.Close()
	client := xds.New(xds.Config{
		Conn: conn, Node: xds.NodeFor(cfg.Node), TokenFile: cfg.TokenFile, ClusterID: cfg.ClusterID,
		Handler: ap, Logger: cfg.Logger,
	})
	adm := &admin.Server{
		Admin: lns[0], Metrics: lns[1], Readiness: lns[2], Gatherer: reg,
		ConfigDump: ap.dump, Ready: ap.ready, Quit: quit, Logger: cfg.Logger,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return px.Serve(gctx, lns[3]) })
	g.Go(func() error { return client.Run(gctx) })
	g.Go(func() error { return adm.Run(gctx) })
	cfg.Logger.Info("waypoint started", "hbone", lns[3].Addr(), "xds", cfg.XDSAddress, "node", cfg.Node.PodName)
	return g.Wait()
}

// listenAll binds admin, metrics, readiness and HBONE, in that order.
func listenAll(cfg Config) ([]net.Listener, error) {
	names := []string{"admin", "metrics", "readiness", "hbone"}
	addrs := []string{cfg.AdminAddr, cfg.MetricsAddr, cfg.ReadinessAddr, cfg.HBONEAddr}
	var lns []net.Listener
	for i, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("listen %s %s: %w", names[i], a, err)
		}
		if cfg.onListen != nil {
			cfg.onListen(names[i], ln.Addr())
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, l := range lns {
		l.Close()
	}
}

// applier builds configurations from xDS states and hands complete ones to the proxy.
type applier struct {
	px      *proxy.Proxy
	log     *slog.Logger
	opts    config.Options
	mu      sync.Mutex
	prev    *config.Config
	applied atomic.Bool
}

// Apply implements xds.Handler: invalid states are rejected (NACK), incomplete ones
// accepted and held until their references arrive, complete ones applied.
func (a *applier) Apply(res *config.Resources) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg, err := config.Build(res, a.prev, a.opts)
	if errors.Is(err, config.ErrIncomplete) {
		a.log.Info("waypoint config incomplete; waiting", "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	a.prev = cfg
	a.px.Update(cfg)
	a.applied.Store(true)
	a.log.Info("waypoint config applied", "chains", len(cfg.Chains), "clusters", len(cfg.Clusters))
	return nil
}

var errNotReady = errors.New("no complete configuration applied yet")

func (a *applier) ready() error {
	if !a.applied.Load() {
		return errNotReady
	}
	return nil
}
