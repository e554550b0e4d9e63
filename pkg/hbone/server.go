package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// GetCertificate returns this pod's certificate chain.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Roots returns the mesh roots; called per handshake.
	Roots func() *x509.CertPool
	// TrustDomain is the trust domain clients must belong to.
	TrustDomain string
	// Connect is called per CONNECT stream after peer verification and dials the
	// upstream (the application). An error wrapping ErrBadRequest answers 400,
	// ErrDenied 401, anything else 503; 200 is sent only after Connect returned a
	// connection. The server then carries bytes both ways and closes the upstream
	// when the stream ends. ctx ends when the stream is reset or the server stops.
	Connect func(ctx context.Context, r *ServerRequest) (net.Conn, error)
	// OnStreamDone (optional) reports a stream's bytes and error after it ended.
	OnStreamDone func(r *ServerRequest, s Stats, err error)
	// OnConnError (optional) reports a connection refused during the handshake or
	// peer verification (errors wrap ErrTrustDomain, ErrExpired, ...).
	OnConnError func(remote net.Addr, err error)
	// MaxConcurrentStreams is advertised to clients (default 1000); beyond it new
	// streams are refused (REFUSED_STREAM).
	MaxConcurrentStreams uint32
	// HandshakeTimeout bounds the TLS handshake (default 10s).
	HandshakeTimeout time.Duration
}

// ServerRequest describes one verified CONNECT stream.
type ServerRequest struct {
	Authority  netip.AddrPort    // the CONNECT target (:authority)
	Peer       spiffe.Identity   // the verified client identity
	PeerCert   *x509.Certificate // the client's leaf certificate
	RemoteAddr net.Addr          // the tunnel connection's remote address
	LocalAddr  net.Addr          // the tunnel connection's local address (this pod's IP:15008)
	Header     http.Header       // regular request headers (baggage, forwarded, traceparent)
}

// Server accepts HBONE connections (port 15008).
type Server struct {
	cfg  ServerConfig
	tcfg *tls.Config
}

// NewServer builds a Server; it starts nothing.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 1000
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg}
	s.tcfg = serverTLS(&s.cfg)
	return s
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection it accepted and returns nil once they are done. It may be called for
// several listeners at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeConn(ctx, nc)
		}()
	}
}

// ServeConn serves one raw TCP connection (TLS handshake included) until it closes
// or ctx ends. It closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	bc := newBatchConn(c)
	tc := tls.Server(bc, s.tcfg)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.connError(c.RemoteAddr(), fmt.Errorf("tls handshake: %w", err))
		return
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	id, err := spiffe.FromCertificate(leaf)
	if err != nil { // verified in the handshake; defensive
		s.connError(c.RemoteAddr(), fmt.Errorf("peer identity: %w", err))
		return
	}
	s.serveH2(ctx, tc, bc, id, leaf)
}

func (s *Server) connError(remote net.Addr, err error) {
	if s.cfg.OnConnError != nil {
		s.cfg.OnConnError(remote, err)
	}
}

// serveH2 speaks HTTP/2 on an established (verified) connection until it fails or
// ctx ends, then waits for its streams.
func (s *Server) serveH2(ctx context.Context, nc net.Conn, bc *batchConn, peer spiffe.Identity, cert *x509.Certificate) {
	c := newConn(nc, bc, false)
	var wg sync.WaitGroup
	defer wg.Wait()
	if err := c.writePreface(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameRecv},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	); err != nil {
		c.close(err)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.flushLoop()
	}()
	stop := context.AfterFunc(ctx, func() { c.goAwayClose(http2.ErrCodeNo, context.Cause(ctx)) })
	defer stop()
	err := c.readLoop(func(f *http2.MetaHeadersFrame) error {
		return s.onRequest(ctx, c, &wg, peer, cert, f)
	})
	c.finish(err)
}

// onRequest handles request HEADERS: a new CONNECT stream, or trailers.
func (s *Server) onRequest(ctx context.Context, c *h2conn, wg *sync.WaitGroup, peer spiffe.Identity, cert *x509.Certificate, f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	if id%2 == 0 || id <= c.highestID {
		st := c.streams[id]
		c.mu.Unlock()
		switch {
		case st == nil:
			return fmt.Errorf("headers on closed stream %d: %w", id, http2.ConnectionError(http2.ErrCodeStreamClosed))
		case !f.StreamEnded():
			st.abort(fmt.Errorf("trailers: %w", resetError(http2.ErrCodeProtocol)), http2.ErrCodeProtocol, true)
		default:
			c.endRecv(st)
		}
		return nil
	}
	if c.goAway || len(c.streams) >= int(s.cfg.MaxConcurrentStreams) {
		c.highestID = id
		c.mu.Unlock()
		c.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	sctx, cancel := context.WithCancel(ctx)
	st := c.newStreamLocked(id)
	st.cancel = cancel
	st.recvEnd = f.StreamEnded()
	c.mu.Unlock()

	req := &ServerRequest{Peer: peer, PeerCert: cert, RemoteAddr: c.nc.RemoteAddr(), LocalAddr: c.nc.LocalAddr()}
	if err := parseRequest(f, req); err != nil {
		c.respond(st, statusFor(err), true)
		s.streamDone(req, Stats{}, err)
		return nil
	}
	if st.recvEnd {
		st.deliver(nil, nil, true)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		s.handleStream(sctx, c, st, req)
	}()
	return nil
}

// handleStream connects upstream, answers, and carries the stream's bytes.
func (s *Server) handleStream(ctx context.Context, c *h2conn, st *stream, req *ServerRequest) {
	up, err := s.cfg.Connect(ctx, req)
	if err == nil && up == nil {
		err = errors.New("connect returned no connection")
	}
	if err != nil {
		c.respond(st, statusFor(err), false)
		s.streamDone(req, Stats{}, fmt.Errorf("connect %s: %w", req.Authority, err))
		return
	}
	defer up.Close()
	if err := c.respond(st, http.StatusOK, false); err != nil {
		s.streamDone(req, Stats{}, err)
		return
	}
	stats, err := st.pump(up)
	s.streamDone(req, stats, err)
}

func (s *Server) streamDone(r *ServerRequest, st Stats, err error) {
	if s.cfg.OnStreamDone != nil {
		s.cfg.OnStreamDone(r, st, err)
	}
}

// respond sends the response HEADERS; a status other than 200 ends the stream (and
// resets it with NO_ERROR if the client is still sending, RFC 9113 §8.1).
func (c *h2conn) respond(st *stream, status int, fromReader bool) error {
	end := status != http.StatusOK
	c.pmu.Lock()
	c.mu.Lock()
	err := st.err
	if err == nil && end {
		st.sentEnd = true
	}
	c.mu.Unlock()
	if err == nil {
		err = c.encodeHeadersLocked(st.id, []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}, end)
	}
	c.pmu.Unlock()
	if err != nil {
		return err
	}
	if end {
		st.abort(&StatusError{Code: status}, http2.ErrCodeNo, true)
	}
	if fromReader {
		c.signal()
		return nil
	}
	return c.flushPending()
}

// parseRequest validates a CONNECT request: method CONNECT, :authority ip:port, no
// :path, :scheme or :protocol. Errors wrap ErrBadRequest.
func parseRequest(f *http2.MetaHeadersFrame, req *ServerRequest) error {
	if f.Truncated {
		return fmt.Errorf("%w: header list too large", ErrBadRequest)
	}
	var method, authority string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":authority":
			authority = hf.Value
		default:
			return fmt.Errorf("%w: unexpected pseudo-header %s", ErrBadRequest, hf.Name)
		}
	}
	if method != http.MethodConnect {
		return fmt.Errorf("%w: method %q, want CONNECT", ErrBadRequest, method)
	}
	ap, err := ParseAuthority(authority)
	if err != nil {
		return err
	}
	req.Authority = ap
	req.Header = make(http.Header)
	for _, hf := range f.RegularFields() {
		req.Header.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
	}
	return nil
}
