package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/waypoint/config"
)

// ErrNoConfig: no configuration has been applied yet (streams answer 503).
var ErrNoConfig = errors.New("waypoint: no configuration applied")

// ErrNoChain: no main_internal filter chain matches a CONNECT authority (503, as
// Envoy closes the connection when no filter chain matches).
var ErrNoChain = errors.New("waypoint: no filter chain for destination")

// Options configure a Proxy.
type Options struct {
	// TrustDomain is the mesh trust domain HBONE peers must belong to.
	TrustDomain string
	// Metrics records istio_requests_total and istio_request_duration_milliseconds;
	// nil records nothing.
	Metrics *Metrics
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Dial opens the TCP connection of an upstream tunnel to tunnel.address (default a
	// net.Dialer); tests map ip:15008 to their own ports here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy is the waypoint data path. Build with New, give it configurations with
// Update, and serve HBONE with Serve.
type Proxy struct {
	opts    Options
	cfg     atomic.Pointer[config.Config]
	up      *upstream
	lb      *balancer
	gates   sync.Map // cluster name -> *gate
	streams *streamListener
	hs      *hbone.Server
	srv     *http.Server
	wg      sync.WaitGroup // mirrors and TCP pipes, started with spawn
	mu      sync.Mutex
	closing bool
	rnd     func() uint64
}

// New builds a Proxy; it starts nothing.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Dial == nil {
		var d net.Dialer
		opts.Dial = d.DialContext
	}
	p := &Proxy{opts: opts, streams: newStreamListener(), lb: newBalancer(), rnd: rand.Uint64}
	p.up = newUpstream(p.clientTLS, opts.Dial)
	p.hs = hbone.NewServer(hbone.ServerConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.certificate() },
		Roots:          p.roots,
		TrustDomain:    opts.TrustDomain,
		Connect:        p.connect,
		OnConnError: func(remote net.Addr, err error) {
			p.opts.Logger.Debug("hbone connection refused", "remote", remote, "err", err)
		},
	})
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	p.srv = &http.Server{
		Handler:           p,
		Protocols:         protocols,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Hour, // Envoy's default HCM idle timeout
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*streamConn); ok {
				return context.WithValue(ctx, infoKey{}, sc.info)
			}
			return ctx
		},
	}
	return p
}

type infoKey struct{}

// serveKey holds Serve's context in request contexts, for work that outlives a
// request but not the proxy (mirrors).
type serveKey struct{}

// Update makes cfg the configuration of new streams and requests.
func (p *Proxy) Update(cfg *config.Config) { p.cfg.Store(cfg) }

// Config returns the applied configuration, or nil.
func (p *Proxy) Config() *config.Config { return p.cfg.Load() }

func (p *Proxy) certificate() (*tls.Certificate, error) {
	cfg := p.cfg.Load()
	if cfg == nil || cfg.TLS == nil || cfg.TLS.Certificate == nil {
		return nil, ErrNoConfig
	}
	return cfg.TLS.Certificate, nil
}

func (p *Proxy) roots() *x509.CertPool {
	cfg := p.cfg.Load()
	if cfg == nil || cfg.TLS == nil {
		return nil
	}
	return cfg.TLS.Roots
}

// Serve terminates HBONE on ln (the waypoint's :15008) until ctx ends, then stops
// accepting, closes the streams' HTTP server and upstream connections, and waits for
// every goroutine it started. It must be called once.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	// Requests (and mirrors) run under ctx, so they end when the waypoint stops.
	p.srv.BaseContext = func(net.Listener) context.Context { return context.WithValue(ctx, serveKey{}, ctx) }
	httpDone := make(chan error, 1)
	go func() { httpDone <- p.srv.Serve(p.streams) }()
	err := p.hs.Serve(ctx, ln)
	p.streams.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if p.srv.Shutdown(sctx) != nil {
		_ = p.srv.Close()
	}
	cancel()
	<-httpDone
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.wg.Wait()
	p.up.close()
	return err
}

// spawn runs f on a goroutine Serve waits for; false (f not run) once Serve is ending.
func (p *Proxy) spawn(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// connect answers one CONNECT stream: it picks the filter chain for the authority and
// returns the stream's upstream end (HTTP chains: a socket served by the HTTP server;
// TCP chains: a socket piped to the cluster over HBONE, connected before 200).
func (p *Proxy) connect(ctx context.Context, r *hbone.ServerRequest) (net.Conn, error) {
	cfg := p.cfg.Load()
	if cfg == nil {
		return nil, ErrNoConfig
	}
	ch := cfg.Chain(r.Authority)
	if ch == nil {
		return nil, fmt.Errorf("%w %s", ErrNoChain, r.Authority)
	}
	info := newConnInfo(r.Authority, r.Peer, r.Header)
	if ch.HTTP == nil {
		return p.connectTCP(ctx, cfg, ch, info)
	}
	// A socket pair, not an in-memory pipe: pkg/hbone writes received DATA to a socket
	// straight from its read loop and reads it only once readable, where an in-memory
	// pipe costs a writer goroutine and a 64 KiB buffer per idle stream for the same
	// CPU per request (BenchmarkRequestPaced).
	a, b, err := socketPair()
	if err != nil {
		return nil, err
	}
	if !p.streams.push(&streamConn{Conn: b, info: info}) {
		a.Close()
		b.Close()
		return nil, net.ErrClosed
	}
	return a, nil
}

// pipe copies both ways between a and b with half-close, then closes both.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil {
			a.Close()
			b.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}
