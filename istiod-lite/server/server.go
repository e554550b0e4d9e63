// Package server composes istiod-lite: a config source (a directory of YAML, or the
// Kubernetes API through informers), the workload model, the delta xDS (WDS) server and
// the CA, served on gRPC (TLS on 15012, optionally plaintext on 15010) plus a
// monitoring endpoint on 15014. In Kubernetes mode it also keeps the CA root in a
// Secret, authenticates CA callers with TokenReview, publishes the root ConfigMap in
// every namespace and reports invalid objects as Events.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/rest"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/istiod-lite/waypoint"
	"github.com/ambitmesh/ambit/istiod-lite/xds"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Config is istiod-lite's configuration; flags map onto it one to one. Exactly one
// config source is set: ConfigDir (file mode) or Kubeconfig/RESTConfig (Kubernetes
// mode).
type Config struct {
	// ConfigDir is the file config source's directory of Kubernetes YAML.
	ConfigDir string
	// Kubeconfig is the path of a kubeconfig file selecting Kubernetes mode.
	Kubeconfig string
	// RESTConfig selects Kubernetes mode with a ready client config (in-cluster
	// config, tests); it wins over Kubeconfig.
	RESTConfig *rest.Config
	// SystemNamespace holds the CA Secrets (Kubernetes mode); "" means istio-system.
	SystemNamespace string
	// CASecret names the Secret of the generated root (Kubernetes mode); "" means
	// istio-ca-secret. The plug-in Secret "cacerts" is always looked at first.
	CASecret string
	// CADir holds the CA files in file mode (Istio plug-in layout; generated when
	// absent). Unused in Kubernetes mode, where the CA lives in Secrets.
	CADir       string
	TrustDomain string
	ClusterID   string
	// TrustedNodeAccounts may ask for certificates of pods on their node; nil means
	// istio-system/ztunnel. Trust domains may be empty (the CA's is used).
	TrustedNodeAccounts []spiffe.Identity
	// Waypoint configures the waypoint deployment controller (Kubernetes mode); an empty
	// Image with the default engine leaves it off.
	Waypoint          waypoint.Config
	GRPCAddr          string   // TLS: xDS + CA
	GRPCPlaintextAddr string   // optional plaintext xDS + CA
	TLSDNSNames       []string // serving certificate names
	// TokensFile authenticates CA bearer tokens from a file (file mode; in Kubernetes
	// mode it is consulted before TokenReview).
	TokensFile     string
	MonitoringAddr string
	// Debounce is how long either config source gathers changes into one snapshot
	// (the window opens at the first change); 0 means the source's default, 20 ms.
	// Shorter windows push sooner and more often (every push reaches every ztunnel).
	Debounce time.Duration
	Logger   *slog.Logger
}

// ErrConfigSource is returned by Run when not exactly one config source is set.
var ErrConfigSource = errors.New("set exactly one config source: a config dir or a kubeconfig")

func (c Config) kubeMode() bool { return c.RESTConfig != nil || c.Kubeconfig != "" }

// servingCertTTL is the lifetime of istiod-lite's own TLS certificate; it is reissued
// at half life.
const servingCertTTL = 24 * time.Hour

// Run serves until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.kubeMode() == (cfg.ConfigDir != ""):
		return ErrConfigSource
	case cfg.kubeMode():
		return runKube(ctx, cfg)
	}
	return runFiles(ctx, cfg)
}

// runFiles is file mode: CA from CADir, config from ConfigDir.
func runFiles(ctx context.Context, cfg Config) error {
	authority, err := ca.LoadOrCreate(cfg.CADir, cfg.TrustDomain)
	if err != nil {
		return fmt.Errorf("load ca: %w", err)
	}
	p, err := newPlane(cfg, authority, nil)
	if err != nil {
		return err
	}
	watcher := &kubefile.Watcher{Dir: cfg.ConfigDir, Debounce: cfg.Debounce, Logger: cfg.Logger, OnChange: func(s *kubefile.Snapshot) { p.apply(s) }}
	return p.run(ctx, watcher.Run)
}

// plane is the part common to both modes: the model, the xDS and CA services and their
// listeners.
type plane struct {
	cfg       Config
	log       *slog.Logger
	authority *ca.Authority
	opts      model.Options
	builder   *model.Builder // used by apply only, one snapshot at a time
	current   atomic.Pointer[model.Model]
	synced    atomic.Bool
	ready     chan struct{} // closed by the first apply
	readyOnce sync.Once
	xds       *xds.Server
	ca        *caserver.Server
	waypoints *xds.Waypoints
	// hadGateways: the last snapshot had Gateways (apply's goroutine only).
	hadGateways bool
	// onL7, when set, gets each L7 build's result (status conditions to write back).
	onL7 func(l7.Result)
}

// newPlane builds the services; authns are tried after the client-certificate and
// tokens-file authenticators.
func newPlane(cfg Config, authority *ca.Authority, authns []caserver.Authenticator) (*plane, error) {
	var tokens *caserver.Tokens
	if cfg.TokensFile != "" {
		var err error
		if tokens, err = caserver.LoadTokens(cfg.TokensFile); err != nil {
			return nil, fmt.Errorf("load tokens: %w", err)
		}
	}
	wps := newWaypoints(cfg, authority, tokens, authns)
	p := &plane{
		cfg: cfg, log: cfg.Logger, authority: authority,
		opts:      model.Options{ClusterID: cfg.ClusterID, TrustDomain: cfg.TrustDomain, RootNamespace: cfg.SystemNamespace},
		xds:       xds.New(cfg.Logger, xds.WithWaypoints(wps)),
		waypoints: wps, ready: make(chan struct{}),
	}
	p.builder = model.NewBuilder(p.opts)
	p.current.Store(model.Build(&kubefile.Snapshot{}, p.opts))
	p.ca = caserver.New(caserver.Config{
		Authority: authority, Tokens: tokens, Authenticators: authns,
		ClusterID: cfg.ClusterID, TrustedNodeAccounts: cfg.TrustedNodeAccounts, Logger: cfg.Logger,
		IdentitiesOnNode: func(node string) []spiffe.Identity { return p.current.Load().IdentitiesOnNode(node) },
	})
	return p, nil
}

// apply builds the model of a snapshot (incrementally: only what changed since the
// previous snapshot is recomputed) and serves it; the first call makes istiod-lite
// ready. Calls come from one config source goroutine at a time.
func (p *plane) apply(s *kubefile.Snapshot) *model.Model {
	start := time.Now()
	m := p.builder.Build(s)
	p.current.Store(m)
	changed := p.xds.Update(m)
	p.applyWaypoints(s)
	// The first snapshot is worth a line; later ones (up to one per debounce window
	// under churn) only at debug level.
	level := slog.LevelDebug
	if !p.synced.Swap(true) {
		level = slog.LevelInfo
	}
	p.readyOnce.Do(func() { close(p.ready) })
	p.log.Log(context.Background(), level, "config applied", "changed", changed, "took", time.Since(start),
		"pods", len(s.Pods), "services", len(s.Services), "namespaces", len(s.Namespaces),
		"authorizationpolicies", len(s.AuthorizationPolicies), "peerauthentications", len(s.PeerAuthentications))
	return m
}

// run runs the config sources and the monitoring endpoint, and opens the gRPC
// listeners once the first snapshot has been applied: a ztunnel (re)connecting earlier
// would be served an empty model and drop the workloads it knows.
func (p *plane) run(ctx context.Context, parts ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range parts {
		g.Go(func() error { return run(gctx) })
	}
	if p.cfg.MonitoringAddr != "" {
		g.Go(func() error { return serveMonitoring(gctx, p.cfg.MonitoringAddr, &p.synced) })
	}
	g.Go(func() error {
		t := time.NewTicker(waypointRefresh)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				p.waypoints.Refresh()
			}
		}
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-p.ready:
		}
		return p.serveGRPC(gctx, g)
	})
	return g.Wait()
}

// serveGRPC listens on the gRPC addresses and adds their servers to g.
func (p *plane) serveGRPC(ctx context.Context, g *errgroup.Group) error {
	serving := &servingCert{authority: p.authority, names: p.cfg.TLSDNSNames}
	tlsCfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: serving.get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      p.authority.Roots(),
	}
	newGRPC := func(opt ...grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opt...)
		p.ca.Register(s)
		p.xds.Register(s)
		return s
	}
	type listener struct {
		addr string
		srv  *grpc.Server
		ln   net.Listener
	}
	servers := []*listener{{addr: p.cfg.GRPCAddr, srv: newGRPC(grpc.Creds(credentials.NewTLS(tlsCfg)))}}
	if p.cfg.GRPCPlaintextAddr != "" {
		servers = append(servers, &listener{addr: p.cfg.GRPCPlaintextAddr, srv: newGRPC()})
	}
	for i, s := range servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, prev := range servers[:i] {
				prev.ln.Close()
			}
			return fmt.Errorf("listen %s: %w", s.addr, err)
		}
		s.ln = ln
	}
	for _, s := range servers {
		g.Go(func() error { return s.srv.Serve(s.ln) })
		g.Go(func() error {
			<-ctx.Done()
			s.srv.GracefulStop()
			return nil
		})
		p.log.Info("serving xds and ca", "addr", s.ln.Addr().String())
	}
	return nil
}

func serveMonitoring(ctx context.Context, addr string, synced *atomic.Bool) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	// Profiles, as istiod serves them on its monitoring port (loopback or pod network
	// only; the chart does not expose the port outside the cluster).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
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
