package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/waypoint/config"
)

// upstream carries requests to endpoints through HBONE tunnels. The tunnel client is
// an HTTP/2 transport whose CONNECT streams are the tunnels (pooled per tunnel.address:
// many streams per TLS connection); HTTP/1.1 and h2c transports run over those streams,
// keyed by tunnel.destination.
type upstream struct {
	tunnel *http2.Transport
	h1     *http.Transport
	h2     *http.Transport
	addrs  sync.Map // destination "ip:port" -> tunnel address "ip:15008"

	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{} // open tunnel TLS connections
}

// trackedConn is a tunnel TLS connection that upstream can close at shutdown. Its
// writes go through an updateHolder.
type trackedConn struct {
	net.Conn
	u    *upstream
	h    updateHolder
	once sync.Once
}

func (c *trackedConn) Write(p []byte) (int, error) { return c.h.Write(p) }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.h.close()
		c.u.mu.Lock()
		delete(c.u.conns, c)
		c.u.mu.Unlock()
	})
	return c.Conn.Close()
}

// track registers a new tunnel connection; it is closed at once after close.
func (u *upstream) track(c net.Conn) (net.Conn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, u: u}
	tc.h.w = c
	u.conns[tc] = struct{}{}
	return tc, nil
}

func newUpstream(tlsConfig func() (*tls.Config, error), dial func(ctx context.Context, network, addr string) (net.Conn, error)) *upstream {
	u := &upstream{conns: map[*trackedConn]struct{}{}}
	u.tunnel = &http2.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			cfg, err := tlsConfig()
			if err != nil {
				return nil, err
			}
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(newRawTCP(raw), cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("hbone handshake with %s: %w", addr, err)
			}
			return u.track(tc)
		},
		ReadIdleTimeout:    60 * time.Second,
		PingTimeout:        15 * time.Second,
		DisableCompression: true,
	}
	dialStream := func(ctx context.Context, _, addr string) (net.Conn, error) {
		v, ok := u.addrs.Load(addr)
		if !ok {
			return nil, fmt.Errorf("no tunnel address for %s", addr)
		}
		// Every cluster's connect_timeout is 10s (issue5.md section 2).
		ctx, cancel := context.WithTimeout(ctx, config.ConnectTimeout)
		defer cancel()
		c, err := u.dial(ctx, v.(string), addr, nil)
		if err != nil {
			return nil, &connectError{err: err}
		}
		return c, nil
	}
	u.h1 = &http.Transport{
		DialContext:         dialStream,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	u.h2 = &http.Transport{
		DialContext:        dialStream,
		Protocols:          h2,
		IdleConnTimeout:    60 * time.Second,
		DisableCompression: true,
	}
	return u
}

// close closes every connection of every transport; later dials fail.
func (u *upstream) close() {
	u.h1.CloseIdleConnections()
	u.h2.CloseIdleConnections()
	u.tunnel.CloseIdleConnections()
	u.mu.Lock()
	u.closed = true
	conns := make([]*trackedConn, 0, len(u.conns))
	for c := range u.conns {
		conns = append(conns, c)
	}
	u.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// roundTrip sends req to the endpoint (destination through address).
func (u *upstream) roundTrip(req *http.Request, destination, address string, h2 bool) (*http.Response, error) {
	if v, ok := u.addrs.Load(destination); !ok || v.(string) != address {
		u.addrs.Store(destination, address) // a Store allocates: only on change
	}
	req.URL.Scheme = "http"
	req.URL.Host = destination
	if h2 {
		return u.h2.RoundTrip(req)
	}
	return u.h1.RoundTrip(req)
}

// dial opens one CONNECT stream to address with :authority destination. It returns
// once the server answered: 200 gives the tunnel; other statuses *hbone.StatusError.
func (u *upstream) dial(ctx context.Context, address, destination string, header http.Header) (net.Conn, error) {
	// The request body is a buffered in-memory queue, not an io.Pipe: a Write returns
	// at once, so an HTTP/1.1 request's header and body writes are read (and sent) as
	// one DATA frame when the body follows at once, instead of two.
	body := newBufPipe()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if header == nil {
		header = http.Header{}
	}
	req := (&http.Request{
		Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: address},
		Host: destination, Header: header, Body: pipeBody{body}, ContentLength: -1,
		Proto: "HTTP/2.0", ProtoMajor: 2,
	}).WithContext(sctx)
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := u.tunnel.RoundTrip(req)
		ch <- result{resp, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		cancel()
		r = <-ch
		if r.err == nil {
			r.resp.Body.Close()
		}
		body.closeWrite(true)
		return nil, fmt.Errorf("hbone connect %s via %s: %w", destination, address, ctx.Err())
	}
	if r.err != nil {
		cancel()
		body.closeWrite(true)
		return nil, fmt.Errorf("hbone connect %s via %s: %w", destination, address, r.err)
	}
	if r.resp.StatusCode != http.StatusOK {
		r.resp.Body.Close()
		cancel()
		body.closeWrite(true)
		return nil, fmt.Errorf("hbone connect %s via %s: %w", destination, address, &hbone.StatusError{Code: r.resp.StatusCode})
	}
	return &tunnelConn{w: body, r: r.resp.Body, cancel: cancel, remote: tunnelAddr(destination)}, nil
}

// errNoCertificate: the "default" secret has not arrived.
var errNoCertificate = errors.New("no waypoint certificate")

// clientTLS is the upstream HBONE TLS configuration: TLS 1.3, ALPN h2, the "default"
// certificate, and a server chained to ROOTCA with a URI SAN in the trust domain
// (connect_originate's UpstreamTlsContext).
func (p *Proxy) clientTLS() (*tls.Config, error) {
	cert, err := p.certificate()
	if err != nil {
		return nil, errNoCertificate
	}
	roots := p.roots()
	td := p.opts.TrustDomain
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		Certificates:       []tls.Certificate{*cert},
		InsecureSkipVerify: true, // no SNI; URI SAN and chain verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, roots, td)
		},
	}, nil
}

func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, td string) error {
	if cs.NegotiatedProtocol != "h2" {
		return fmt.Errorf("verify server: alpn %q, want h2", cs.NegotiatedProtocol)
	}
	if len(cs.PeerCertificates) == 0 || roots == nil {
		return errors.New("verify server: no certificate or no roots")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("verify server: %w", err)
	}
	for _, u := range leaf.URIs {
		if strings.HasPrefix(u.String(), "spiffe://"+td+"/") {
			if _, err := spiffe.Parse(u.String()); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("verify server: no URI SAN in trust domain %q", td)
}
