package hbone

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

func TestStatusCodes(t *testing.T) {
	ca := newTestCA(t)
	echo := startEcho(t)
	var connectCalls atomic.Int64
	cfg := serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{}))
	cfg.Connect = func(ctx context.Context, r *ServerRequest) (net.Conn, error) {
		connectCalls.Add(1)
		switch r.Header.Get("X-Test") {
		case "bad":
			return nil, fmt.Errorf("not my pod: %w", ErrBadRequest)
		case "deny":
			return nil, fmt.Errorf("policy: %w", ErrDenied)
		case "fail":
			return nil, errors.New("connection refused")
		}
		return dialAuthority(ctx, r)
	}
	addr, _ := startServer(t, cfg)
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))

	for _, tc := range []struct {
		name, authority, header string
		want                    int
		wantConnect             bool
	}{
		{"ok", echo, "", 200, true},
		{"bad request", echo, "bad", 400, true},
		{"denied", echo, "deny", 401, true},
		{"upstream failed", echo, "fail", 503, true},
		{"host name authority", "example.com:80", "", 400, false},
		{"port zero", "127.0.0.1:0", "", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := connectCalls.Load()
			req := Request{Address: addr, Authority: tc.authority, Identities: []spiffe.Identity{serverID},
				Header: http.Header{"X-Test": {tc.header}}}
			c, err := client.Dial(context.Background(), req)
			var se *StatusError
			switch {
			case tc.want == 200 && err != nil:
				t.Fatalf("Dial: %v", err)
			case tc.want == 200:
				c.Close()
			case !errors.As(err, &se) || se.Code != tc.want:
				t.Fatalf("Dial err = %v, want status %d", err, tc.want)
			}
			if called := connectCalls.Load() > before; called != tc.wantConnect {
				t.Fatalf("Connect called = %v, want %v", called, tc.wantConnect)
			}
		})
	}
	if n := client.NumConns(); n != 1 {
		t.Fatalf("NumConns = %d, want 1 (streams share the connection)", n)
	}
}

func TestVerification(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	past := time.Now().Add(-48 * time.Hour)
	foreign := spiffe.Identity{TrustDomain: "other.domain", Namespace: "demo", ServiceAccount: "client"}
	foreignServer := spiffe.Identity{TrustDomain: "other.domain", Namespace: "demo", ServiceAccount: "server"}
	wrongServer := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "intruder"}
	for _, tc := range []struct {
		name       string
		serverCert *tls.Certificate
		clientCert *tls.Certificate // nil: none
		clientErr  error            // wanted on the client's Dial (nil: any error)
		serverErr  error            // wanted in OnConnError (nil: not checked)
	}{
		{name: "wrong server identity", serverCert: ca.leaf(t, wrongServer, time.Time{}, time.Time{}),
			clientCert: ca.leaf(t, clientID, time.Time{}, time.Time{}), clientErr: ErrIdentityMismatch},
		{name: "server wrong trust domain", serverCert: ca.leaf(t, foreignServer, time.Time{}, time.Time{}),
			clientCert: ca.leaf(t, clientID, time.Time{}, time.Time{}), clientErr: ErrTrustDomain},
		{name: "expired server cert", serverCert: ca.leaf(t, serverID, past, past.Add(time.Hour)),
			clientCert: ca.leaf(t, clientID, time.Time{}, time.Time{}), clientErr: ErrExpired},
		{name: "untrusted server root", serverCert: otherCA.leaf(t, serverID, time.Time{}, time.Time{}),
			clientCert: ca.leaf(t, clientID, time.Time{}, time.Time{}), clientErr: ErrUntrustedPeer},
		{name: "client wrong trust domain", serverCert: ca.leaf(t, serverID, time.Time{}, time.Time{}),
			clientCert: ca.leaf(t, foreign, time.Time{}, time.Time{}), serverErr: ErrTrustDomain},
		{name: "expired client cert", serverCert: ca.leaf(t, serverID, time.Time{}, time.Time{}),
			clientCert: ca.leaf(t, clientID, past, past.Add(time.Hour)), serverErr: ErrExpired},
		{name: "untrusted client root", serverCert: ca.leaf(t, serverID, time.Time{}, time.Time{}),
			clientCert: otherCA.leaf(t, clientID, time.Time{}, time.Time{}), serverErr: ErrUntrustedPeer},
		{name: "no client cert", serverCert: ca.leaf(t, serverID, time.Time{}, time.Time{}),
			serverErr: ErrNoPeerCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverErrs := make(chan error, 1)
			cfg := serverConfig(ca, tc.serverCert)
			cfg.OnConnError = func(_ net.Addr, err error) {
				select {
				case serverErrs <- err: // the first is enough; the client may retry
				default:
				}
			}
			var connected atomic.Bool
			cfg.Connect = func(ctx context.Context, r *ServerRequest) (net.Conn, error) {
				connected.Store(true)
				return nil, ErrDenied
			}
			addr, _ := startServer(t, cfg)
			ccfg := clientConfig(ca, tc.clientCert)
			if tc.clientCert == nil {
				ccfg.GetClientCertificate = func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }
			}
			client := newClient(t, ccfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := client.Dial(ctx, Request{Address: addr, Authority: "127.0.0.1:1", Identities: []spiffe.Identity{serverID}})
			if err == nil {
				t.Fatal("Dial succeeded, want refusal")
			}
			var se *StatusError
			if errors.As(err, &se) || connected.Load() {
				t.Fatalf("request reached the server: %v", err)
			}
			if tc.clientErr != nil && !errors.Is(err, tc.clientErr) {
				t.Fatalf("Dial err = %v, want %v", err, tc.clientErr)
			}
			if tc.serverErr != nil {
				select {
				case serr := <-serverErrs:
					if !errors.Is(serr, tc.serverErr) {
						t.Fatalf("server err = %v, want %v", serr, tc.serverErr)
					}
				case <-ctx.Done():
					t.Fatal("server reported no error")
				}
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	ca := newTestCA(t)
	// The upstream sends a greeting, half-closes, then reads until EOF and reports
	// what it got.
	got := make(chan string, 2)
	up := startUpstream(t, func(c net.Conn) {
		_, _ = c.Write([]byte("greeting"))
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	addr, _ := startServer(t, serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{})))
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))
	req := Request{Address: addr, Authority: up, Identities: []spiffe.Identity{serverID}}

	t.Run("dial", func(t *testing.T) {
		c, err := client.Dial(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := io.ReadAll(c) // upstream FIN arrives as END_STREAM
		if err != nil || string(b) != "greeting" {
			t.Fatalf("read %q, %v", b, err)
		}
		if _, err := c.Write([]byte("still writing")); err != nil { // our half is open
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "still writing" {
			t.Fatalf("upstream got %q", s)
		}
	})
	t.Run("proxy", func(t *testing.T) {
		app, peer := tcpPair(t)
		done := make(chan error, 1)
		go func() {
			_, err := client.Proxy(context.Background(), req, peer)
			peer.Close()
			done <- err
		}()
		b, err := io.ReadAll(app) // FIN forwarded to the app side
		if err != nil || string(b) != "greeting" {
			t.Fatalf("read %q, %v", b, err)
		}
		if _, err := app.Write([]byte("still writing")); err != nil {
			t.Fatal(err)
		}
		_ = app.(*net.TCPConn).CloseWrite()
		if s := <-got; s != "still writing" {
			t.Fatalf("upstream got %q", s)
		}
		if err := <-done; err != nil {
			t.Fatalf("Proxy: %v", err)
		}
	})
}

// TestLargeTransfer sends 64 MiB each way through Proxy and Dial and compares digests.
func TestLargeTransfer(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	ca := newTestCA(t)
	echo := startEcho(t)
	addr, _ := startServer(t, serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{})))
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))
	req := Request{Address: addr, Authority: echo, Identities: []spiffe.Identity{serverID}}
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	want := sha256.Sum256(payload)

	check := func(t *testing.T, c net.Conn, closeWrite func() error) {
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(payload)
			if err == nil {
				err = closeWrite()
			}
			errc <- err
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", n, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("got %d bytes, digest mismatch=%v", n, !bytes.Equal(h.Sum(nil), want[:]))
		}
	}
	t.Run("proxy", func(t *testing.T) {
		app, peer := tcpPair(t)
		done := make(chan struct{})
		var st Stats
		var perr error
		go func() {
			defer close(done)
			st, perr = client.Proxy(context.Background(), req, peer)
			peer.Close()
		}()
		check(t, app, app.(*net.TCPConn).CloseWrite)
		<-done
		if perr != nil || st.Sent != int64(size) || st.Received != int64(size) {
			t.Fatalf("Proxy = %+v, %v", st, perr)
		}
	})
	t.Run("dial", func(t *testing.T) {
		c, err := client.Dial(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c, c.CloseWrite)
	})
}

func TestPooling(t *testing.T) {
	ca := newTestCA(t)
	echo := startEcho(t)
	for _, tc := range []struct {
		name      string
		max       int
		serverMax uint32
		streams   int
		wantConns int64
	}{
		{"one connection", 100, 0, 50, 1},
		{"spill over max streams", 10, 0, 25, 3},
		{"spill over server's max concurrent streams", 100, 2, 5, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{}))
			scfg.MaxConcurrentStreams = tc.serverMax
			addr, ln := startServer(t, scfg)
			before := ln.n.Load()
			cfg := clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{}))
			cfg.MaxStreamsPerConn = tc.max
			client := newClient(t, cfg)
			req := Request{Address: addr, Authority: echo, Identities: []spiffe.Identity{serverID}}
			conns := make([]*Conn, tc.streams)
			var wg sync.WaitGroup
			errs := make(chan error, tc.streams)
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := client.Dial(context.Background(), req)
					if err != nil {
						errs <- err
						return
					}
					conns[i] = c
					msg := fmt.Sprintf("stream %d", i)
					buf := make([]byte, len(msg))
					if _, err := c.Write([]byte(msg)); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					if err != nil || string(buf) != msg {
						errs <- fmt.Errorf("echo %q: %q, %v", msg, buf, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := ln.n.Load() - before; got != tc.wantConns {
				t.Fatalf("accepted %d connections, want %d", got, tc.wantConns)
			}
			for _, c := range conns {
				c.Close()
			}
		})
	}
}

func TestIdleAndGoAway(t *testing.T) {
	ca := newTestCA(t)
	echo := startEcho(t)
	cfg := clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{}))
	cfg.IdleTimeout = 20 * time.Millisecond
	client := newClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{})))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	req := Request{Address: ln.Addr().String(), Authority: echo, Identities: []spiffe.Identity{serverID}}

	c, err := client.Dial(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	eventually(t, "idle connection closed", func() bool { return client.NumConns() == 0 })

	// A server shutdown (GOAWAY, close) fails open streams and empties the pool.
	c, err = client.Dial(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("read after shutdown: %v, want ErrConnClosed", err)
	}
	eventually(t, "closed connection dropped", func() bool { return client.NumConns() == 0 })
}
