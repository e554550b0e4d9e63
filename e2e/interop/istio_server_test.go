package interop

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	istiohbone "istio.io/istio/pkg/hbone"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// istioServer is Istio's own HBONE server (istio.io/istio/pkg/hbone.NewServer) on a
// loopback TLS listener, with the client identities its TLS layer saw.
type istioServer struct {
	addr  string
	peers chan spiffe.Identity // one per handshake that carried a client certificate
}

// startIstioServer serves Istio's HBONE server on 127.0.0.1:0 behind a TLS listener
// presenting cert with ALPN h2, the way Istio's echo server runs its HBONE port. Client
// certificates are verified against a's root when given but not required (as the echo
// server); the server itself checks no identity or policy. It stops when the test ends.
func startIstioServer(t testing.TB, a *ca.Authority, cert *tls.Certificate) *istioServer {
	t.Helper()
	s := &istioServer{peers: make(chan spiffe.Identity, 16)}
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    a.Roots(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				if id, err := spiffe.FromCertificate(cs.PeerCertificates[0]); err == nil {
					s.peers <- id
				}
			}
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen istio hbone: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := istiohbone.NewServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("istio hbone server: %v", err)
		}
	})
	return s
}

// newAmbitClient returns Ambit's HBONE client presenting cert and trusting a's root;
// it is closed when the test ends.
func newAmbitClient(t testing.TB, a *ca.Authority, cert *tls.Certificate) *hbone.Client {
	t.Helper()
	c := hbone.NewClient(hbone.ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return cert, nil },
		Roots:                a.Roots,
		TrustDomain:          trustDomain,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestAmbitClientToIstioServer: Ambit's HBONE client, holding a certificate issued by
// Ambit's CA, tunnels through Istio's own HBONE server to an echo server, with
// half-close carried both ways (END_STREAM ↔ TCP FIN). Ambit's client refuses an
// Istio server whose identity it does not expect or whose chain is not the mesh's.
func TestAmbitClientToIstioServer(t *testing.T) {
	authority := newAuthority(t)
	serverCert := issue(t, authority, serverID)
	clientCert := issue(t, authority, clientID)

	t.Run("round trip", func(t *testing.T) {
		echo := startEcho(t)
		srv := startIstioServer(t, authority, serverCert)
		client := newAmbitClient(t, authority, clientCert)
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		c, err := client.Dial(ctx, hbone.Request{
			Address:    srv.addr,
			Authority:  echo.Addr(),
			Identities: []spiffe.Identity{serverID},
		})
		if err != nil {
			t.Fatalf("ambit hbone dial: %v", err)
		}
		defer c.Close()
		if err := roundTrip(c, newPayload(t), c.CloseWrite); err != nil {
			t.Fatalf("round trip through istio server: %v", err)
		}
		// The echo server half-closes after our half-close; Istio's server then ends
		// the stream, which Ambit's client reports as EOF.
		if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("read after the echo: %d bytes, %v; want EOF", n, err)
		}
		if id := receive(t, srv.peers, "client certificate at the istio server"); id != clientID {
			t.Errorf("istio server saw client %s, want %s", id, clientID)
		}
		if n := echo.accepted.Load(); n != 1 {
			t.Errorf("echo server accepted %d connections, want 1", n)
		}
	})

	foreign := newAuthority(t) // same trust domain, different root
	tests := []struct {
		name       string
		serverCert *tls.Certificate
		expect     []spiffe.Identity
		wantErr    error
	}{
		{name: "identity not expected", serverCert: serverCert, expect: []spiffe.Identity{otherID}, wantErr: hbone.ErrIdentityMismatch},
		{name: "certificate from a different root", serverCert: issue(t, foreign, serverID), expect: []spiffe.Identity{serverID}, wantErr: hbone.ErrUntrustedPeer},
	}
	for _, tc := range tests {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			echo := startEcho(t)
			srv := startIstioServer(t, authority, tc.serverCert)
			client := newAmbitClient(t, authority, clientCert)
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			c, err := client.Dial(ctx, hbone.Request{Address: srv.addr, Authority: echo.Addr(), Identities: tc.expect})
			if err == nil {
				_ = c.Close()
				t.Fatal("ambit hbone dial succeeded, want it refused")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("dial error %v, want one wrapping %v", err, tc.wantErr)
			}
			if n := echo.accepted.Load(); n != 0 {
				t.Errorf("echo server accepted %d connections, want 0", n)
			}
		})
	}
}
