package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// backend is one destination pod: an HBONE server (as its ztunnel) in front of an
// HTTP server that records what it receives.
type backend struct {
	name     string
	ips      []string // pod IPs this backend answers for in endpoint metadata
	hboneLn  net.Listener
	appLn    net.Listener
	requests sync.Map // path -> *atomic.Int64
	hosts    chan string
	holds    sync.Map // path -> chan struct{}: requests to /hold* wait until it is closed
}

func (b *backend) hold(path string) chan struct{} {
	v, _ := b.holds.LoadOrStore(path, make(chan struct{}))
	return v.(chan struct{})
}

func (b *backend) count(path string) int64 {
	v, _ := b.requests.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, _ := b.requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
	n := v.(*atomic.Int64).Add(1)
	if strings.HasSuffix(r.Host, "-shadow") || strings.Contains(r.Host, "-shadow:") {
		select {
		case b.hosts <- r.Host:
		default:
		}
	}
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("X-Proto", r.Proto)
	switch r.URL.Path {
	case "/retry":
		if n%2 == 1 {
			http.Error(w, "flaky", http.StatusServiceUnavailable)
			return
		}
	case "/fail-v2":
		if b.name == "v2" {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
	case "/hold", "/hold-pool", "/hold-half", "/hold-gone":
		select {
		case <-r.Context().Done():
			return
		case <-b.hold(r.URL.Path):
		}
	case "/payload":
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(payload)
		return
	case "/count":
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
		return
	case "/big":
		chunk := bytes.Repeat([]byte("b"), 64<<10)
		for range bigChunks {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	case "/timeout":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	fmt.Fprintf(w, "%s %s %s", b.name, r.Method, r.URL.Path)
}

// startBackend runs a destination: its HTTP app and its HBONE server.
func (e *env) startBackend(ctx context.Context, t testing.TB, wg *sync.WaitGroup, b *backend) {
	t.Helper()
	b.hosts = make(chan string, 64)
	b.appLn = listen(t, "127.0.0.1:0")
	b.hboneLn = listen(t, "127.0.0.1:0")
	leaf := mustIssue(t, e.ca, spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "reviews-" + b.name})
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second, Protocols: protocols}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(b.appLn)
	}()
	t.Cleanup(func() { srv.Close() })
	hs := hbone.NewServer(hbone.ServerConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return leaf.TLS, nil },
		Roots:          func() *x509.CertPool { return e.ca.Pool },
		TrustDomain:    "cluster.local",
		Connect: func(ctx context.Context, r *hbone.ServerRequest) (net.Conn, error) {
			if !slices.Contains(b.ips, r.Authority.Addr().String()) {
				return nil, fmt.Errorf("authority %s not on %v: %w", r.Authority, b.ips, hbone.ErrBadRequest)
			}
			if r.Peer != waypointID {
				return nil, fmt.Errorf("peer %s: %w", r.Peer, hbone.ErrDenied)
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", b.appLn.Addr().String())
		},
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = hs.Serve(ctx, b.hboneLn)
	}()
	e.backends[b.name] = b
}
