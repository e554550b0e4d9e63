package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	istiohbone "istio.io/istio/pkg/hbone"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/hbone"
)

// ambitServer is Ambit's HBONE server on a loopback listener, with what it observed.
type ambitServer struct {
	addr     string
	requests chan hbone.ServerRequest // one per Connect call
	done     chan hbone.Stats         // one per finished stream
	connErrs chan error               // one per refused connection
}

// startAmbitServer serves HBONE on 127.0.0.1:0 with cert, trusting a's root; its
// Connect dials the requested authority on loopback. It stops when the test ends.
func startAmbitServer(t testing.TB, a *ca.Authority, cert *tls.Certificate) *ambitServer {
	t.Helper()
	s := &ambitServer{
		requests: make(chan hbone.ServerRequest, 16),
		done:     make(chan hbone.Stats, 16),
		connErrs: make(chan error, 16),
	}
	srv := hbone.NewServer(hbone.ServerConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
		Roots:          a.Roots,
		TrustDomain:    trustDomain,
		Connect: func(ctx context.Context, r *hbone.ServerRequest) (net.Conn, error) {
			s.requests <- *r
			var d net.Dialer
			return d.DialContext(ctx, "tcp", r.Authority.String())
		},
		OnStreamDone: func(_ *hbone.ServerRequest, st hbone.Stats, _ error) { s.done <- st },
		OnConnError:  func(_ net.Addr, err error) { s.connErrs <- err },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen hbone: %v", err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ambit hbone server: %v", err)
		}
	})
	return s
}

// istioClientTLS is the TLS configuration given to Istio's HBONE dialer, shaped like
// the one Istio's echo forwarder builds: the client certificate (if any), the chain
// checked against roots. Istio's dialer does not check the server's SAN, so neither
// does this configuration.
func istioClientTLS(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // no host name to match: the chain is verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verifyChain(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// istioDial opens a tunnel to target through Istio's HBONE dialer. The dialer ignores
// its context, so the wait is bounded here.
func istioDial(d istiohbone.Dialer, target string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := d.DialContext(context.Background(), "tcp", target)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(ioTimeout):
		return nil, fmt.Errorf("istio hbone dial %s: no answer within %v", target, ioTimeout)
	}
}

// receive returns the next value of ch, failing the test after ioTimeout.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(ioTimeout):
		t.Fatalf("no %s within %v", what, ioTimeout)
		var zero T
		return zero
	}
}

// TestIstioClientToAmbitServer: Istio's own HBONE client (istio.io/istio/pkg/hbone),
// holding a certificate issued by Ambit's CA, tunnels through Ambit's HBONE server to
// an echo server; Ambit's server sees the client's SPIFFE identity and the requested
// authority. Clients without a certificate from the mesh root are refused during the
// handshake, before any upstream connection.
func TestIstioClientToAmbitServer(t *testing.T) {
	authority := newAuthority(t)
	serverCert := issue(t, authority, serverID)
	clientCert := issue(t, authority, clientID)

	t.Run("round trip", func(t *testing.T) {
		echo := startEcho(t)
		srv := startAmbitServer(t, authority, serverCert)
		d := istiohbone.NewDialer(istiohbone.Config{
			ProxyAddress: srv.addr,
			TLS:          istioClientTLS(clientCert, authority.Roots()),
		})
		c, err := istioDial(d, echo.Addr())
		if err != nil {
			t.Fatalf("istio hbone dial: %v", err)
		}
		payload := newPayload(t)
		err = roundTrip(c, payload, nil)
		_ = c.Close()
		if err != nil {
			t.Fatalf("round trip through ambit server: %v", err)
		}

		req := receive(t, srv.requests, "CONNECT at the ambit server")
		if req.Peer != clientID {
			t.Errorf("server saw peer %s, want %s", req.Peer, clientID)
		}
		if want := netip.MustParseAddrPort(echo.Addr()); req.Authority != want {
			t.Errorf("server saw authority %s, want %s", req.Authority, want)
		}
		st := receive(t, srv.done, "end of the stream at the ambit server")
		if st.Received != payloadSize || st.Sent != payloadSize {
			t.Errorf("server stream stats %+v, want %d bytes each way", st, payloadSize)
		}
	})

	foreign := newAuthority(t) // same trust domain, different root
	tests := []struct {
		name    string
		cert    *tls.Certificate
		wantErr error // the server's connection error wraps it; nil: any error
	}{
		{name: "certificate from a different root", cert: issue(t, foreign, clientID), wantErr: hbone.ErrUntrustedPeer},
		{name: "no client certificate", cert: nil},
	}
	for _, tc := range tests {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			echo := startEcho(t)
			srv := startAmbitServer(t, authority, serverCert)
			d := istiohbone.NewDialer(istiohbone.Config{
				ProxyAddress: srv.addr,
				TLS:          istioClientTLS(tc.cert, authority.Roots()),
			})
			c, err := istioDial(d, echo.Addr())
			if err == nil {
				_ = c.Close()
				t.Fatal("istio hbone dial succeeded, want the ambit server to refuse it")
			}
			connErr := receive(t, srv.connErrs, "connection error at the ambit server")
			if tc.wantErr != nil && !errors.Is(connErr, tc.wantErr) {
				t.Errorf("server connection error %v, want one wrapping %v", connErr, tc.wantErr)
			}
			select {
			case r := <-srv.requests:
				t.Errorf("refused client reached Connect: %+v", r)
			default:
			}
			if n := echo.accepted.Load(); n != 0 {
				t.Errorf("echo server accepted %d connections, want 0", n)
			}
		})
	}
}
