package forward

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

const ioTimeout = 10 * time.Second

// startEcho serves, on loopback, a TCP server that echoes until the peer half-closes,
// then half-closes itself.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, func(ctx context.Context, c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo: %v", err)
		}
	})
	return ln.Addr().String()
}

// startForwarder forwards a loopback listener to target with Pipe.
func startForwarder(t *testing.T, target string) string {
	t.Helper()
	lns, err := Listen([]Mapping{{Listen: "127.0.0.1:0", Target: target}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeAll(ctx, []Route{{Listener: lns[0], Handle: func(ctx context.Context, c net.Conn) {
			up, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
			if err != nil {
				_ = c.Close()
				return
			}
			Pipe(ctx, c, up)
		}}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})
	return Addrs(lns)[0]
}

// roundTrip writes payload, half-closes, and expects the same bytes then EOF.
func roundTrip(t *testing.T, addr string, payload []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	go func() {
		_, _ = c.Write(payload)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != string(payload) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(payload))
	}
}

func TestPipeHalfClose(t *testing.T) {
	fwd := startForwarder(t, startEcho(t))
	for _, size := range []int{0, 1, 1 << 20} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		roundTrip(t, fwd, payload)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	accepted := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, func(ctx context.Context, c net.Conn) {
			close(accepted)
			<-ctx.Done() // a handler that honours ctx
			_ = c.Close()
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return after ctx ended")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func TestListenClosesOnFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := Listen([]Mapping{{"127.0.0.1:0", "h:1"}, {busy.Addr().String(), "h:1"}}); err == nil {
		t.Fatal("listened on a busy port")
	}
}

func TestIssueFiles(t *testing.T) {
	newCA := func() *ca.Authority {
		a, err := ca.LoadOrCreate(t.TempDir(), spiffe.DefaultTrustDomain)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, foreign := newCA(), newCA()
	id := spiffe.Identity{TrustDomain: spiffe.DefaultTrustDomain, Namespace: "plain-tls", ServiceAccount: "client"}
	files, err := IssueFiles(a, id, time.Hour, filepath.Join(t.TempDir(), "client"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadIdentity(files.Cert, files.Key, files.Root)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(got.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if peer, err := spiffe.FromCertificate(leaf); err != nil || peer != id {
		t.Fatalf("leaf identity %v, %v; want %s", peer, err, id)
	}
	var chain []*x509.Certificate
	for _, der := range got.Cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	tests := []struct {
		name  string
		certs []*x509.Certificate
		roots *x509.CertPool
		ok    bool
	}{
		{"own root", chain, got.Roots, true},
		{"foreign root", chain, foreign.Roots(), false},
		{"no certificate", nil, got.Roots, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyChain(tc.certs, tc.roots, x509.ExtKeyUsageServerAuth)
			if tc.ok != (err == nil) {
				t.Fatalf("VerifyChain: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := LoadIdentity(files.Cert, files.Key, files.Cert+".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root file: %v", err)
	}
}
