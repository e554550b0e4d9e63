package interop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// payloadSize is the number of bytes each test sends through a tunnel: several MiB, so
// that both peers' flow-control windows are exhausted and refilled many times.
const payloadSize = 6 << 20

// ioTimeout bounds every blocking step of a test, so a broken peer fails the test
// instead of hanging it.
const ioTimeout = 30 * time.Second

// echoServer is a TCP echo server on loopback: it writes back everything it reads and
// half-closes its side when the client half-closed.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
}

// startEcho starts an echo server on 127.0.0.1:0 and stops it (listener, connections,
// goroutines) when the test ends.
func startEcho(t testing.TB) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen echo: %v", err)
	}
	e := &echoServer{ln: ln}
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			e.wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					_ = c.Close()
				}()
				// Plain reads and writes (no splice of a socket onto itself).
				buf := make([]byte, 64<<10)
				if _, err := io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
					_, _ = io.Copy(io.Discard, c) // until the peer closes
				}
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		e.wg.Wait()
	})
	return e
}

// Addr returns the echo server's "127.0.0.1:port".
func (e *echoServer) Addr() string { return e.ln.Addr().String() }

// newPayload returns payloadSize random bytes.
func newPayload(t testing.TB) []byte {
	t.Helper()
	p := make([]byte, payloadSize)
	if _, err := rand.Read(p); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return p
}

// roundTrip writes payload to c from another goroutine while reading len(payload)
// bytes back, and reports whether they came back intact. halfClose is called after the
// last write (nil when the connection has no half-close). Deadlines bound both sides.
func roundTrip(c net.Conn, payload []byte, halfClose func() error) error {
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	werr := make(chan error, 1)
	go func() {
		if _, err := c.Write(payload); err != nil {
			werr <- fmt.Errorf("write: %w", err)
			return
		}
		if halfClose != nil {
			if err := halfClose(); err != nil {
				werr <- fmt.Errorf("half-close: %w", err)
				return
			}
		}
		werr <- nil
	}()
	got := make([]byte, len(payload))
	_, rerr := io.ReadFull(c, got)
	if rerr != nil {
		_ = c.Close() // unblock the writer
		return errors.Join(fmt.Errorf("read: %w", rerr), <-werr)
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echoed %d bytes differ from the %d sent (first difference at %d)", len(got), len(payload), firstDiff(got, payload))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
