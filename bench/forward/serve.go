package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Serve accepts connections on ln and runs handle for each on its own goroutine until
// ctx ends; then it closes ln, waits for every handler and returns nil. handle must
// return soon after its ctx ends (Pipe does). An accept error other than the close
// ends Serve with that error, after the handlers returned.
func Serve(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			_ = ln.Close()
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		wg.Go(func() { handle(ctx, c) })
	}
}

// closeWriter is a connection that can end its sending side alone (TCP, TLS).
type closeWriter interface{ CloseWrite() error }

// Pipe copies a→b and b→a with io.Copy until both directions end, ending b's (a's)
// sending side when a (b) has no more to send: CloseWrite where the connection has
// it (TCP FIN, TLS close_notify), else Close. It closes both connections before it
// returns, and at once when ctx ends. It returns the bytes copied each way.
func Pipe(ctx context.Context, a, b net.Conn) (aToB, bToA int64) {
	stop := context.AfterFunc(ctx, func() {
		_ = a.Close()
		_ = b.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { bToA = copyHalf(a, b) })
	aToB = copyHalf(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
	return aToB, bToA
}

// copyHalf copies src to dst, then ends dst's sending side.
func copyHalf(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		if cw.CloseWrite() == nil {
			return n
		}
	}
	_ = dst.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = src.Close() // a failed direction ends the other as well
	}
	return n
}

// Route is a bound listener and the handler of its connections.
type Route struct {
	Listener net.Listener
	Handle   func(ctx context.Context, c net.Conn)
}

// ServeAll runs Serve for every route until ctx ends or one of them fails, which ends
// the others too; it returns once all returned, with every failure joined.
func ServeAll(ctx context.Context, routes []Route) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(routes))
	for _, r := range routes {
		go func() {
			err := Serve(ctx, r.Listener, r.Handle)
			cancel()
			errs <- err
		}()
	}
	var all error
	for range routes {
		all = errors.Join(all, <-errs)
	}
	return all
}

// Listen binds every mapping's listen address (TCP), in order. On failure it closes
// what it bound and returns the error.
func Listen(ms []Mapping) ([]net.Listener, error) {
	var lns []net.Listener
	for _, m := range ms {
		ln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// Addrs returns the listeners' bound addresses.
func Addrs(lns []net.Listener) []string {
	out := make([]string, len(lns))
	for i, ln := range lns {
		out[i] = ln.Addr().String()
	}
	return out
}
