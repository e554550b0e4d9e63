package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
)

// serveCNI serves the pod event API (package podapi) on the CNI socket until ctx ends.
func (a *Agent) serveCNI(ctx context.Context) error {
	path := a.cfg.CNISocket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cni socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cni socket: remove stale: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("cni socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return fmt.Errorf("cni socket: %w", err)
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-a.listening: // a second Run
	default:
		close(a.listening)
	}
	a.log.Info("cni event server listening", "path", path)
	select {
	case err := <-errc:
		return fmt.Errorf("cni socket: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}

// Handler returns the HTTP handler of the pod event API: POST podapi.PathAdd and
// podapi.PathDel (200 done, 400 bad input, 503 config not loaded yet, 500 failure) and
// GET podapi.PathPods.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+podapi.PathAdd, func(w http.ResponseWriter, r *http.Request) {
		var req podapi.AddRequest
		if !decode(w, r, &req, req.Validate) {
			return
		}
		if err := a.waitReady(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		if err := a.addPod(r.Context(), req); err != nil {
			a.log.Error("pod add failed", "pod", req.Namespace+"/"+req.Name, "uid", req.UID, "err", err)
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST "+podapi.PathDel, func(w http.ResponseWriter, r *http.Request) {
		var req podapi.DelRequest
		if !decode(w, r, &req, req.Validate) {
			return
		}
		if err := a.delPod(r.Context(), req); err != nil {
			a.log.Error("pod del failed", "uid", req.UID, "err", err)
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET "+podapi.PathPods, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.statuses())
	})
	return mux
}

// decode reads a bounded JSON body into v and validates it, answering 400 on failure.
func decode(w http.ResponseWriter, r *http.Request, v any, validate func() error) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, podapi.MaxBody))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err == nil {
		err = validate()
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad request: %w", err))
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(podapi.ErrorResponse{Error: err.Error()})
}
