package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// dialAuthority is the default test Connect: dial the :authority on loopback.
func dialAuthority(ctx context.Context, r *ServerRequest) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", r.Authority.String())
}

// serverConfig returns a server configuration presenting cert, trusting ca.
func serverConfig(ca *testCA, cert *tls.Certificate) ServerConfig {
	return ServerConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
		Roots:          func() *x509.CertPool { return ca.pool },
		TrustDomain:    "cluster.local",
		Connect:        dialAuthority,
	}
}

// startServer serves cfg on a loopback listener until the test ends.
func startServer(t testing.TB, cfg ServerConfig) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := NewServer(cfg)
	go func() { done <- srv.Serve(ctx, cl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), cl
}

// clientConfig returns a client configuration presenting cert, trusting ca.
func clientConfig(ca *testCA, cert *tls.Certificate) ClientConfig {
	return ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return cert, nil },
		Roots:                func() *x509.CertPool { return ca.pool },
		TrustDomain:          "cluster.local",
	}
}

func newClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	c := NewClient(cfg)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startEcho runs a TCP echo server that half-closes after the peer's FIN.
func startEcho(t testing.TB) string {
	t.Helper()
	return startUpstream(t, func(c net.Conn) {
		_, _ = io.Copy(c, c)
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
}

// startUpstream runs handle for every connection to a loopback listener.
func startUpstream(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal(errors.New("accept failed"))
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
