package hbone

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// startStockServer serves CONNECT with x/net/http2's Server over TLS (ALPN h2): it
// answers 200 and echoes the request body into the response, or 401 when the
// request carries "X-Test: deny".
func startStockServer(t *testing.T, cert *tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAnyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http2.Server{MaxReadFrameSize: 1 << 20}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-Test") == "deny" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Authority", r.Host)
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		fl.Flush()
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				fl.Flush()
			}
			if err != nil {
				return
			}
		}
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				srv.ServeConn(c, &http2.ServeConnOpts{Handler: handler})
			}()
		}
	}()
	return ln.Addr().String()
}

func TestInteropClientToStockServer(t *testing.T) {
	ca := newTestCA(t)
	addr := startStockServer(t, ca.leaf(t, serverID, time.Time{}, time.Time{}))
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))
	req := Request{Address: addr, Authority: "10.0.0.1:8080", Identities: []spiffe.Identity{serverID}}

	t.Run("echo with half-close", func(t *testing.T) {
		c, err := client.Dial(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		payload := make([]byte, 8<<20)
		_, _ = rand.Read(payload)
		go func() {
			_, _ = c.Write(payload)
			_ = c.CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d bytes, equal=%v, err %v", len(got), bytes.Equal(got, payload), err)
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
		payload := make([]byte, 4<<20)
		_, _ = rand.Read(payload)
		go func() {
			_, _ = app.Write(payload)
			_ = app.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(app)
		if err != nil || sha256.Sum256(got) != sha256.Sum256(payload) {
			t.Fatalf("echo: %d bytes, err %v", len(got), err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Proxy: %v", err)
		}
	})
	t.Run("status", func(t *testing.T) {
		r := req
		r.Header = http.Header{"X-Test": {"deny"}}
		_, err := client.Dial(context.Background(), r)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
			t.Fatalf("Dial = %v, want status 401", err)
		}
	})
}

func TestInteropStockTransportToServer(t *testing.T) {
	ca := newTestCA(t)
	echo := startEcho(t)
	cfg := serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{}))
	var gotPeer spiffe.Identity
	var mu sync.Mutex
	cfg.Connect = func(ctx context.Context, r *ServerRequest) (net.Conn, error) {
		mu.Lock()
		gotPeer = r.Peer
		mu.Unlock()
		if r.Authority.Port() == 1 {
			return nil, errors.New("refused")
		}
		return dialAuthority(ctx, r)
	}
	addr, _ := startServer(t, cfg)
	cert := ca.leaf(t, clientID, time.Time{}, time.Time{})
	tr := &http2.Transport{TLSClientConfig: &tls.Config{
		Certificates:       []tls.Certificate{*cert},
		NextProtos:         []string{"h2"},
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // URI SAN identity; checked below
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verifyPeer(cs.PeerCertificates, ca.pool, "cluster.local", 0)
			return err
		},
	}}
	defer tr.CloseIdleConnections()

	t.Run("echo", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodConnect, "https://"+addr, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = echo
		req.Header.Set("Baggage", "k8s.namespace.name=demo")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		payload := make([]byte, 8<<20)
		_, _ = rand.Read(payload)
		go func() {
			_, _ = pw.Write(payload)
			_ = pw.Close()
		}()
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d bytes, err %v", len(got), err)
		}
		mu.Lock()
		defer mu.Unlock()
		if gotPeer != clientID {
			t.Fatalf("peer = %v, want %v", gotPeer, clientID)
		}
	})
	t.Run("upstream refused", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodConnect, "https://"+addr, http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "127.0.0.1:1"
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	})
}
