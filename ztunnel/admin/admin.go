// Package admin serves ztunnel's local endpoints: the admin API on 15000
// (/config_dump, /quitquitquit, /debug/pprof/), Prometheus metrics on 15020 (/metrics) and readiness on
// 15021 (/healthz/ready), at Istio's ports and paths.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Dumper produces the sections of /config_dump.
type Dumper interface {
	ConfigDump() map[string]any
}

// Server serves the three endpoints.
type Server struct {
	AdminAddr, MetricsAddr, ReadinessAddr string
	Gatherer                              prometheus.Gatherer
	Dumper                                Dumper
	// Ready reports readiness; nil means ready.
	Ready func() error
	// Quit is called by POST /quitquitquit.
	Quit   func()
	Logger *slog.Logger
}

// Run serves until ctx ends, then shuts the servers down.
func (s *Server) Run(ctx context.Context) error {
	admin := http.NewServeMux()
	admin.HandleFunc("/config_dump", s.configDump)
	// Go profiles on the localhost-only admin port, for `go tool pprof`.
	admin.HandleFunc("/debug/pprof/", pprof.Index)
	admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
	admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	admin.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		fmt.Fprintln(w, "OK")
		if s.Quit != nil {
			go s.Quit()
		}
	})
	metrics := http.NewServeMux()
	// Uncompressed: a gzip writer holds about 0.5 MiB per scrape, a tenth of ztunnel's
	// heap, for a page of a few KiB sent within the node's network.
	metrics.Handle("/metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{DisableCompression: true}))
	ready := http.NewServeMux()
	ready.HandleFunc("/healthz/ready", s.ready)

	servers := []*http.Server{
		{Addr: s.AdminAddr, Handler: admin},
		{Addr: s.MetricsAddr, Handler: metrics},
		{Addr: s.ReadinessAddr, Handler: ready},
	}
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, o := range servers {
				o.Close()
			}
			return fmt.Errorf("admin listen %s: %w", srv.Addr, err)
		}
		go func() { errs <- srv.Serve(ln) }()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	for range servers {
		if e := <-errs; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	return err
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) configDump(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Dumper.ConfigDump()); err != nil {
		s.Logger.Warn("config_dump write failed", "err", err)
	}
}
