// Package admin serves the waypoint's local endpoints at Istio's ports and paths: the
// admin API (127.0.0.1:15000: /config_dump with the applied Envoy resources as JSON,
// /debug/pprof/, POST /quitquitquit), Prometheus metrics (:15020 /metrics) and
// readiness (:15021 /healthz/ready, 200 once a complete configuration is applied and
// HBONE listens, else 503).
package admin

import (
	"context"
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

// Server serves the three endpoints on listeners its owner bound.
type Server struct {
	// Admin, Metrics and Readiness are the bound listeners (any may be nil: not served).
	Admin, Metrics, Readiness net.Listener
	// Gatherer backs /metrics.
	Gatherer prometheus.Gatherer
	// ConfigDump returns the /config_dump JSON body.
	ConfigDump func() ([]byte, error)
	// Ready returns nil when ready; its error is the 503 body.
	Ready func() error
	// Quit is called (once per request) by POST /quitquitquit.
	Quit func()
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Run serves until ctx ends, then shuts the servers down (2 s drain) and returns nil;
// a failing server is an error.
func (s *Server) Run(ctx context.Context) error {
	type served struct {
		srv *http.Server
		ln  net.Listener
	}
	var all []served
	if s.Admin != nil {
		all = append(all, served{&http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 10 * time.Second}, s.Admin})
	}
	if s.Metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
		all = append(all, served{&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, s.Metrics})
	}
	if s.Readiness != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz/ready", s.ready)
		all = append(all, served{&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, s.Readiness})
	}
	errs := make(chan error, len(all))
	for _, a := range all {
		go func() { errs <- a.srv.Serve(a.ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		err = fmt.Errorf("admin serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, a := range all {
		if serr := a.srv.Shutdown(sctx); serr != nil {
			_ = a.srv.Close()
		}
	}
	n := len(all)
	if err != nil {
		n--
	}
	for range n {
		if e := <-errs; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("admin serve: %w", e)
		}
	}
	return err
}

func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) {
		if s.ConfigDump == nil {
			http.Error(w, "no config dump", http.StatusNotFound)
			return
		}
		b, err := s.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		_, _ = fmt.Fprintln(w, "OK")
		if s.Quit != nil {
			s.Quit()
		}
	})
	return mux
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = fmt.Fprintln(w, "ready")
}
