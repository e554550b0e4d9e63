package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// GetClientCertificate returns the source workload's certificate chain; called for
	// every new TLS connection, so rotation takes effect on the next one.
	GetClientCertificate func() (*tls.Certificate, error)
	// Roots returns the mesh roots; called per handshake.
	Roots func() *x509.CertPool
	// TrustDomain is the mesh trust domain servers must belong to.
	TrustDomain string
	// Dial opens the raw TCP connection (ztunnel dials from inside the source pod's
	// network namespace). Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxStreamsPerConn caps streams per pooled connection (default 100, as ztunnel);
	// the server's SETTINGS_MAX_CONCURRENT_STREAMS also applies.
	MaxStreamsPerConn int
	// IdleTimeout closes a pooled connection without streams after this long
	// (default 60s).
	IdleTimeout time.Duration
}

// Request describes one CONNECT tunnel.
type Request struct {
	// Address is the TCP address to dial ("podIP:15008"); with Identities, the pool key.
	Address string
	// Authority is the CONNECT :authority, the real target "ip:port".
	Authority string
	// Identities are the acceptable server identities (any one).
	Identities []spiffe.Identity
	// Header holds extra request headers (baggage, forwarded, traceparent).
	Header http.Header
}

// Client opens HBONE tunnels, pooling TLS connections per (Address, Identities).
// It is safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	pool pool
	wg   sync.WaitGroup
}

// NewClient builds a Client; it starts nothing.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.MaxStreamsPerConn <= 0 {
		cfg.MaxStreamsPerConn = 100
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	return &Client{cfg: cfg}
}

// Dial opens a CONNECT stream and returns it once the server answered 200. Other
// statuses return *StatusError; TLS verification failures wrap the sentinels of
// this package (ErrIdentityMismatch, ErrTrustDomain, ErrExpired, ErrUntrustedPeer).
func (c *Client) Dial(ctx context.Context, req Request) (*Conn, error) {
	s, err := c.open(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Conn{s: s}, nil
}

// Proxy opens a CONNECT stream and carries bytes between it and downstream until both
// directions finished (END_STREAM ↔ CloseWrite), ctx ends, or either side fails.
// Received DATA is written to downstream directly from the connection's read loop.
// Proxy does not close downstream, but may leave a past read deadline on it after an
// error.
func (c *Client) Proxy(ctx context.Context, req Request, downstream net.Conn) (Stats, error) {
	s, err := c.open(ctx, req)
	if err != nil {
		return Stats{}, err
	}
	stop := context.AfterFunc(ctx, func() {
		s.abort(fmt.Errorf("proxy: %w", context.Cause(ctx)), http2.ErrCodeCancel, true)
	})
	defer stop()
	st, err := s.pump(downstream)
	if err != nil {
		return st, fmt.Errorf("proxy to %s: %w", req.Authority, err)
	}
	return st, nil
}

// NumConns reports the pooled TLS connections.
func (c *Client) NumConns() int { return c.pool.count() }

// Run blocks until ctx ends, then closes the client. Idle connections are closed by
// their own timers whether or not Run is used.
func (c *Client) Run(ctx context.Context) error {
	<-ctx.Done()
	return c.Close()
}

// Close closes every pooled connection (their streams fail with ErrConnClosed) and
// waits for their goroutines. Later calls fail with ErrClientClosed.
func (c *Client) Close() error {
	for _, hc := range c.pool.closeAll() {
		hc.goAwayClose(http2.ErrCodeNo, ErrClientClosed)
	}
	c.wg.Wait()
	return nil
}

// open returns a stream that got a 200 response, retrying refused streams on other
// connections.
func (c *Client) open(ctx context.Context, req Request) (*stream, error) {
	if req.Address == "" || req.Authority == "" {
		return nil, fmt.Errorf("hbone dial: %w: address and authority required", ErrBadRequest)
	}
	if len(req.Identities) == 0 {
		return nil, fmt.Errorf("hbone dial %s: %w: no acceptable server identity", req.Address, ErrIdentityMismatch)
	}
	key := poolKey(req)
	var err error
	for range 3 {
		var hc *h2conn
		hc, err = c.pool.get(ctx, key, c.cfg.MaxStreamsPerConn, func(ctx context.Context) (*h2conn, error) {
			return c.dialConn(ctx, key, req)
		})
		if err != nil {
			return nil, err
		}
		var s *stream
		s, err = hc.openStream(req)
		if err == nil {
			var status int
			status, err = s.awaitResponse(ctx)
			if err == nil && status == http.StatusOK {
				return s, nil
			}
			if err == nil {
				s.abort(&StatusError{Code: status}, http2.ErrCodeCancel, true)
				return nil, &StatusError{Code: status}
			}
		}
		if !errors.Is(err, errRefused) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("hbone dial %s via %s: %w", req.Authority, req.Address, err)
}

// dialConn opens a new TLS + HTTP/2 connection for the pool.
func (c *Client) dialConn(ctx context.Context, key string, req Request) (*h2conn, error) {
	raw, err := c.cfg.Dial(ctx, "tcp", req.Address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", req.Address, err)
	}
	bc := newBatchConn(raw)
	tc := tls.Client(bc, clientTLS(&c.cfg, req.Identities))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", req.Address, err)
	}
	hc := newConn(tc, bc, true)
	hc.idleTimeout = c.cfg.IdleTimeout
	hc.onClose = func(hc *h2conn) { c.pool.remove(key, hc) }
	if err := hc.writePreface(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameRecv},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	); err != nil {
		hc.close(err)
		return nil, fmt.Errorf("http2 preface to %s: %w", req.Address, err)
	}
	if !c.pool.track(&c.wg) {
		hc.close(ErrClientClosed)
		return nil, ErrClientClosed
	}
	go func() {
		defer c.wg.Done()
		hc.flushLoop()
	}()
	go func() {
		defer c.wg.Done()
		hc.finish(hc.readLoop(nil))
	}()
	return hc, nil
}

// openStream sends the CONNECT HEADERS on a reserved slot.
func (c *h2conn) openStream(req Request) (*stream, error) {
	fields := requestFields(req)
	c.pmu.Lock()
	id := c.nextID
	c.mu.Lock()
	if c.closed || id > maxStreamID {
		c.goAway = true
		c.mu.Unlock()
		c.pmu.Unlock()
		c.unreserve()
		return nil, fmt.Errorf("%w: %w", errRefused, ErrConnClosed)
	}
	c.nextID += 2
	s := c.newStreamLocked(id)
	c.mu.Unlock()
	err := c.encodeHeadersLocked(id, fields, false)
	c.pmu.Unlock()
	if err == nil {
		err = c.flushPending()
	}
	if err != nil {
		s.abort(err, http2.ErrCodeInternal, true)
		return nil, err
	}
	return s, nil
}

// awaitResponse waits for the final response status.
func (s *stream) awaitResponse(ctx context.Context) (int, error) {
	select {
	case st := <-s.respCh:
		return st, nil
	case <-s.aborted:
		select {
		case st := <-s.respCh:
			return st, nil
		default:
			return 0, s.failed()
		}
	case <-ctx.Done():
		s.abort(ctx.Err(), http2.ErrCodeCancel, true)
		return 0, ctx.Err()
	}
}

// hopHeaders are connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2).
var hopHeaders = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true, "te": true, "host": true}

func requestFields(req Request) []hpack.HeaderField {
	fields := []hpack.HeaderField{{Name: ":method", Value: http.MethodConnect}, {Name: ":authority", Value: req.Authority}}
	for k, vs := range req.Header {
		name := strings.ToLower(k)
		if hopHeaders[name] {
			continue
		}
		for _, v := range vs {
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return fields
}
