package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/bench/forward"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

const ioTimeout = 10 * time.Second

// TestMain quiets Istio's per-connection log lines the way the command does.
func TestMain(m *testing.M) {
	if err := configureLog("warn"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	ids := []string{"--cert", "c", "--key", "k", "--root", "r"}
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"client", append([]string{"--role", "client", "--proxy", "10.0.0.1:15008", "--forward", "127.0.0.1:1=h:2"}, ids...), ""},
		{"server", append([]string{"--role", "server", "--listen", ":15008"}, ids...), ""},
		{"server default listen, log level", append([]string{"--role", "server", "--log-level", "info"}, ids...), ""},
		{"no role", ids, "--role"},
		{"client without proxy", append([]string{"--role", "client", "--forward", ":1=h:2"}, ids...), "--proxy"},
		{"client bad proxy", append([]string{"--role", "client", "--proxy", "10.0.0.1", "--forward", ":1=h:2"}, ids...), "--proxy"},
		{"client without forward", append([]string{"--role", "client", "--proxy", "h:1"}, ids...), "--forward"},
		{"server with forward", append([]string{"--role", "server", "--forward", ":1=h:2"}, ids...), "no --forward"},
		{"bad log level", append([]string{"--role", "server", "--log-level", "loud"}, ids...), "--log-level"},
		{"no root", []string{"--role", "server", "--cert", "c", "--key", "k"}, "--root"},
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
func startEcho(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- forward.Serve(ctx, ln, func(ctx context.Context, c net.Conn) {
			acc <- struct{}{}
			defer c.Close()
			_, _ = io.Copy(c, c)
			_ = c.(*net.TCPConn).CloseWrite()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String(), acc
}

// start runs the forwarder with args and returns its listen addresses.
func start(t *testing.T, args ...string) []string {
	t.Helper()
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan []string, 1), make(chan error, 1)
	go func() { done <- run(ctx, o, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", o.role, err)
		}
	})
	select {
	case addrs := <-ready:
		return addrs
	case err := <-done:
		t.Fatalf("%s: %v", o.role, err)
	}
	return nil
}

func issue(t *testing.T, a *ca.Authority, sa string) forward.Files {
	t.Helper()
	id := spiffe.Identity{TrustDomain: spiffe.DefaultTrustDomain, Namespace: "peer-hbone", ServiceAccount: sa}
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

// exchange writes payload and reads as many bytes back, then closes. Unlike TCP it
// does not half-close first: the forwarder, like Istio's own copy into the net.Pipe
// its dialer returns, ends the whole stream on the client's FIN.
func exchange(addr string, payload []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	go func() { _, _ = c.Write(payload) }()
	got := make([]byte, len(payload))
	n, err := io.ReadFull(c, got)
	return got[:n], err
}

// TestForwardThroughIstioHBONE: client role → Istio's HBONE server (server role) →
// echo, several flows over the one pooled HBONE connection; a client whose CA the
// server's chain does not lead to gets nothing through.
func TestForwardThroughIstioHBONE(t *testing.T) {
	a := newCA(t)
	echo, accepted := startEcho(t)
	server := start(t, append([]string{"--role", "server", "--listen", "127.0.0.1:0"}, issue(t, a, "server").Args()...)...)[0]
	clients := start(t, append([]string{"--role", "client", "--proxy", server,
		"--forward", "127.0.0.1:0=" + echo, "--forward", "127.0.0.1:0=" + echo}, issue(t, a, "client").Args()...)...)
	payload := []byte(strings.Repeat("hbone ", 200_000))
	for _, c := range append(clients, clients...) {
		got, err := exchange(c, payload)
		if err != nil || string(got) != string(payload) {
			t.Fatalf("echoed %d of %d bytes via %s: %v", len(got), len(payload), c, err)
		}
	}
	if n := len(accepted); n != 4 {
		t.Errorf("echo accepted %d connections, want 4", n)
	}

	t.Run("foreign root refused", func(t *testing.T) {
		foreign := start(t, append([]string{"--role", "client", "--proxy", server, "--forward", "127.0.0.1:0=" + echo},
			issue(t, newCA(t), "client").Args()...)...)[0]
		if got, _ := exchange(foreign, []byte("hello")); len(got) != 0 {
			t.Fatalf("a client of another CA got %q through", got)
		}
	})
}
