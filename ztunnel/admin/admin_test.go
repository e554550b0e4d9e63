package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type dumper struct{}

func (dumper) ConfigDump() map[string]any {
	return map[string]any{"workloads": []string{"w1"}, "services": []string{}}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestEndpoints(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "istio_tcp_connections_opened_total"})
	reg.MustRegister(c)
	c.Inc()
	quit := make(chan struct{})
	s := &Server{
		AdminAddr: freeAddr(t), MetricsAddr: freeAddr(t), ReadinessAddr: freeAddr(t),
		Gatherer: reg, Dumper: dumper{}, Logger: slog.New(slog.DiscardHandler),
		Ready: func() error {
			if !ready.Load() {
				return errors.New("workload discovery not synced")
			}
			return nil
		},
		Quit: func() { close(quit) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	readyURL := fmt.Sprintf("http://%s/healthz/ready", s.ReadinessAddr)
	var code int
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if code, _, err = get(readyURL); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll until the listener is up
	}
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readiness before sync = %d, want 503", code)
	}
	ready.Store(true)
	if code, _, _ := get(readyURL); code != http.StatusOK {
		t.Fatalf("readiness after sync = %d, want 200", code)
	}
	code, body, err := get(fmt.Sprintf("http://%s/config_dump", s.AdminAddr))
	var dump map[string]any
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &dump) != nil || dump["workloads"] == nil {
		t.Fatalf("config_dump = %d %q %v", code, body, err)
	}
	if code, body, _ := get(fmt.Sprintf("http://%s/metrics", s.MetricsAddr)); code != 200 || !strings.Contains(body, "istio_tcp_connections_opened_total 1") {
		t.Fatalf("metrics = %d %q", code, body)
	}
	if code, _, _ := get(fmt.Sprintf("http://%s/quitquitquit", s.AdminAddr)); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /quitquitquit = %d, want 405", code)
	}
	resp, err := http.Post(fmt.Sprintf("http://%s/quitquitquit", s.AdminAddr), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-quit:
	case <-time.After(10 * time.Second):
		t.Fatal("POST /quitquitquit did not call Quit")
	}
}
