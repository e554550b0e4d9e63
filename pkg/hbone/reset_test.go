package hbone

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

func TestResets(t *testing.T) {
	ca := newTestCA(t)
	// The upstream waits for the app's bytes (so the server's connect has completed:
	// a reset racing the connect would fail the dial instead), answers one byte, then
	// resets the connection (RST).
	resetter := startUpstream(t, func(c net.Conn) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		_, _ = c.Write([]byte("x"))
		_ = c.(*net.TCPConn).SetLinger(0)
	})
	got := make(chan struct{}, 1)
	hold := startUpstream(t, func(c net.Conn) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err == nil {
			got <- struct{}{}
		}
		_, _ = io.Copy(io.Discard, c)
	})
	serverDone := make(chan error, 4)
	cfg := serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{}))
	cfg.OnStreamDone = func(_ *ServerRequest, _ Stats, err error) { serverDone <- err }
	addr, _ := startServer(t, cfg)
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))

	for _, tc := range []struct {
		name       string
		upstream   string
		cancel     bool
		wantClient error
		wantServer error
	}{
		{name: "upstream reset", upstream: resetter, wantClient: ErrStreamReset, wantServer: nil},
		{name: "client cancels", upstream: hold, cancel: true, wantClient: context.Canceled, wantServer: ErrStreamReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, peer := tcpPair(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := client.Proxy(ctx, Request{Address: addr, Authority: tc.upstream, Identities: []spiffe.Identity{serverID}}, peer)
				done <- err
			}()
			if _, err := app.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				<-got // established end to end
				cancel()
			}
			err := <-done
			if !errors.Is(err, tc.wantClient) {
				t.Fatalf("Proxy err = %v, want %v", err, tc.wantClient)
			}
			serr := <-serverDone
			if tc.wantServer != nil && !errors.Is(serr, tc.wantServer) {
				t.Fatalf("server stream err = %v, want %v", serr, tc.wantServer)
			}
			if tc.wantServer == nil && serr == nil {
				t.Fatal("server stream err = nil, want the upstream reset")
			}
		})
	}
}

// TestNoHeadOfLineBlocking checks that an application that stops reading one stream
// does not stall another stream of the same connection.
func TestNoHeadOfLineBlocking(t *testing.T) {
	ca := newTestCA(t)
	flood := startUpstream(t, func(c net.Conn) {
		buf := make([]byte, 1<<20)
		for range 20 {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	echo := startEcho(t)
	addr, ln := startServer(t, serverConfig(ca, ca.leaf(t, serverID, time.Time{}, time.Time{})))
	client := newClient(t, clientConfig(ca, ca.leaf(t, clientID, time.Time{}, time.Time{})))

	_, stuck := tcpPair(t) // nobody reads the app side of the flooded stream
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = client.Proxy(ctx, Request{Address: addr, Authority: flood, Identities: []spiffe.Identity{serverID}}, stuck)
	}()
	defer func() {
		cancel()
		<-done
	}()

	c, err := client.Dial(context.Background(), Request{Address: addr, Authority: echo, Identities: []spiffe.Identity{serverID}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo on second stream: %q, %v", buf, err)
	}
	if n := ln.n.Load(); n != 1 {
		t.Fatalf("accepted %d connections, want 1", n)
	}
}
