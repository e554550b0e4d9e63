package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/bench/forward"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

const ioTimeout = 10 * time.Second

func TestParseFlags(t *testing.T) {
	ids := []string{"--cert", "c", "--key", "k", "--root", "r"}
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"client", append([]string{"--role", "client", "--forward", "127.0.0.1:1=h:2"}, ids...), ""},
		{"server two forwards", append([]string{"--role", "server", "--forward", ":1=h:2", "--forward", ":3=h:4"}, ids...), ""},
		{"no role", append([]string{"--forward", ":1=h:2"}, ids...), "--role"},
		{"bad role", append([]string{"--role", "proxy", "--forward", ":1=h:2"}, ids...), "--role"},
		{"no forward", append([]string{"--role", "client"}, ids...), "--forward"},
		{"bad forward", append([]string{"--role", "client", "--forward", ":1"}, ids...), "bad forward mapping"},
		{"no key", []string{"--role", "client", "--forward", ":1=h:2", "--cert", "c", "--root", "r"}, "--key"},
		{"stray argument", append(append([]string{"--role", "client", "--forward", ":1=h:2"}, ids...), "x"), "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("parseFlags: %v, want error containing %q", err, tc.err)
			}
		})
	}
}

// startEcho echoes each connection until the peer half-closes, then half-closes.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- forward.Serve(ctx, ln, func(ctx context.Context, c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
			_ = c.(*net.TCPConn).CloseWrite()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// startFwd runs the forwarder in role with one mapping and returns its listen address.
func startFwd(t *testing.T, role string, files forward.Files, m string) string {
	t.Helper()
	o, err := parseFlags(append([]string{"--role", role, "--forward", m}, files.Args()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan []string, 1), make(chan error, 1)
	go func() { done <- run(ctx, o, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s forwarder: %v", role, err)
		}
	})
	select {
	case addrs := <-ready:
		return addrs[0]
	case err := <-done:
		t.Fatalf("%s forwarder: %v", role, err)
	}
	return ""
}

func issue(t *testing.T, a *ca.Authority, sa string) forward.Files {
	t.Helper()
	id := spiffe.Identity{TrustDomain: spiffe.DefaultTrustDomain, Namespace: "plain-tls", ServiceAccount: sa}
	f, err := forward.IssueFiles(a, id, time.Hour, filepath.Join(t.TempDir(), sa))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newCA(t *testing.T) *ca.Authority {
	t.Helper()
	a, err := ca.LoadOrCreate(t.TempDir(), spiffe.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// exchange writes payload, half-closes and returns everything read until EOF.
func exchange(addr string, payload []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	go func() {
		_, _ = c.Write(payload)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	return io.ReadAll(c)
}

// TestForwardThroughTLS: client role → server role → echo carries bytes both ways
// with half-close; the hop between the two is TLS 1.3 with a client certificate.
func TestForwardThroughTLS(t *testing.T) {
	a := newCA(t)
	server := startFwd(t, "server", issue(t, a, "server"), "127.0.0.1:0="+startEcho(t))
	client := startFwd(t, "client", issue(t, a, "client"), "127.0.0.1:0="+server)
	payload := []byte(strings.Repeat("ambit ", 200_000))
	for range 3 {
		got, err := exchange(client, payload)
		if err != nil || string(got) != string(payload) {
			t.Fatalf("echoed %d of %d bytes: %v", len(got), len(payload), err)
		}
	}

	t.Run("the hop is mutual TLS 1.3", func(t *testing.T) {
		files := issue(t, a, "probe")
		id, err := forward.LoadIdentity(files.Cert, files.Key, files.Root)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", server, clientTLS(id))
		if err != nil {
			t.Fatalf("dial with a mesh certificate: %v", err)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("TLS version %x, want 1.3", v)
		}
		_ = c.Close()
		noCert := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		if c, err := tls.Dial("tcp", server, noCert); err == nil {
			_ = c.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Error("server accepted a client without a certificate")
			}
			_ = c.Close()
		}
	})

	t.Run("foreign root refused", func(t *testing.T) {
		foreign := startFwd(t, "client", issue(t, newCA(t), "client"), "127.0.0.1:0="+server)
		got, _ := exchange(foreign, []byte("hello"))
		if len(got) != 0 {
			t.Fatalf("a client of another CA got %q through", got)
		}
	})
}
