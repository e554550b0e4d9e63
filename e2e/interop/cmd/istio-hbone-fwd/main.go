// Command istio-hbone-fwd is the benchmark's peer-hbone baseline: the same bytes as
// the l4 mode carried by Istio's own Go HBONE client and server
// (istio.io/istio/pkg/hbone) in place of the ztunnels (/work/shared/spec/performance.md,
// "Modes"). It runs in one of two roles:
//
//	istio-hbone-fwd --role client --proxy 10.20.2.3:15008 \
//	    --forward 127.0.0.1:8080=10.20.2.3:8080 --cert cert.pem --key key.pem --root root.pem
//	istio-hbone-fwd --role server --listen :15008 --cert cert.pem --key key.pem --root root.pem
//
// The client accepts plain TCP on each mapping's listen address and, per accepted
// connection, opens a CONNECT stream to the mapping's target with Istio's HBONE dialer
// (hbone.NewDialer: HTTP/2 over mutual TLS to --proxy, streams multiplexed on pooled
// connections), then copies bytes between the two with io.Copy. Istio's dialer hands
// back a net.Pipe, which cannot half-close: a FIN from the local side ends the stream
// both ways, as Istio's own copy into that pipe does. The server is Istio's
// hbone.NewServer behind a TLS listener with ALPN h2, the way Istio's echo server runs
// its HBONE port: it dials each stream's authority itself. Both sides present
// --cert/--key; the client checks the server's chain against --root (no SAN, as Istio's
// dialer), the server checks a client certificate when one is given. Istio's hbone log
// scope is set to --log-level (default warn: no per-connection lines, so the
// connection-rate figure measures HBONE rather than logging). It stops on SIGTERM or
// SIGINT and exits 1 on bad flags or certificates, or when a listener fails.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	istiohbone "istio.io/istio/pkg/hbone"
	istiolog "istio.io/istio/pkg/log"

	"github.com/ambitmesh/ambit/bench/forward"
)

// dialTimeout bounds each CONNECT; Istio's dialer ignores its context.
const dialTimeout = 10 * time.Second

// options are the command-line flags.
type options struct {
	role, proxy, listen string
	forwards            forward.Mappings
	cert, key, root     string
	logLevel            string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "istio-hbone-fwd:", err)
		os.Exit(2)
	}
	if err := configureLog(o.logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "istio-hbone-fwd:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, nil); err != nil {
		fmt.Fprintln(os.Stderr, "istio-hbone-fwd:", err)
		os.Exit(1)
	}
}

// configureLog sends Istio's log to stderr with the hbone scope at level.
func configureLog(level string) error {
	opts := istiolog.DefaultOptions()
	opts.OutputPaths = []string{"stderr"}
	opts.ErrorOutputPaths = []string{"stderr"}
	opts.SetDefaultOutputLevel("hbone", istiolog.StringToLevel(level))
	if err := istiolog.Configure(opts); err != nil {
		return fmt.Errorf("configure istio log: %w", err)
	}
	return nil
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("istio-hbone-fwd", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.role, "role", "", `"client" (plain TCP in, HBONE out) or "server" (Istio's HBONE server)`)
	fs.StringVar(&o.proxy, "proxy", "", "client: the HBONE server, ip:15008")
	fs.Var(&o.forwards, "forward", "client: listen=target, repeatable; target is the CONNECT authority")
	fs.StringVar(&o.listen, "listen", ":15008", "server: TLS listen address")
	fs.StringVar(&o.cert, "cert", "", "certificate chain, PEM (leaf first)")
	fs.StringVar(&o.key, "key", "", "private key, PEM")
	fs.StringVar(&o.root, "root", "", "root certificate(s) the peer's chain must lead to, PEM")
	fs.StringVar(&o.logLevel, "log-level", "warn", "Istio hbone log scope level: debug, info, warn, error, none")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	switch o.role {
	case "client":
		if o.proxy == "" || len(o.forwards) == 0 {
			return nil, errors.New("parse flags: the client needs --proxy and at least one --forward")
		}
		if _, _, err := net.SplitHostPort(o.proxy); err != nil {
			return nil, fmt.Errorf("parse flags: --proxy: %w", err)
		}
	case "server":
		if len(o.forwards) != 0 {
			return nil, errors.New("parse flags: the server takes no --forward (it dials each stream's authority)")
		}
	default:
		return nil, fmt.Errorf("parse flags: --role must be client or server, not %q", o.role)
	}
	switch o.logLevel {
	case "debug", "info", "warn", "error", "none":
	default:
		return nil, fmt.Errorf("parse flags: bad --log-level %q", o.logLevel)
	}
	if err := forward.RequireIdentityFlags(o.cert, o.key, o.root); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("parse flags: unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// run serves the role until ctx ends. ready, when not nil, receives the bound listen
// addresses once all listen (tests bind port 0).
func run(ctx context.Context, o *options, ready chan<- []string) error {
	id, err := forward.LoadIdentity(o.cert, o.key, o.root)
	if err != nil {
		return err
	}
	if o.role == "server" {
		return serve(ctx, o.listen, id, ready)
	}
	return forwardAll(ctx, o, id, ready)
}

// serve runs Istio's HBONE server behind a TLS listener on addr until ctx ends.
func serve(ctx context.Context, addr string, id *forward.Identity, ready chan<- []string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if ready != nil {
		ready <- []string{ln.Addr().String()}
	}
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{id.Cert},
		NextProtos:   []string{"h2"},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    id.Roots,
	}
	srv := istiohbone.NewServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	select {
	case err := <-served:
		return fmt.Errorf("istio hbone server: %w", err)
	case <-ctx.Done():
	}
	_ = srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("istio hbone server: %w", err)
	}
	return nil
}

// forwardAll listens on every mapping and carries each accepted connection through
// one Istio HBONE dialer (one connection pool) until ctx ends.
func forwardAll(ctx context.Context, o *options, id *forward.Identity, ready chan<- []string) error {
	d := istiohbone.NewDialer(istiohbone.Config{ProxyAddress: o.proxy, TLS: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{id.Cert},
		InsecureSkipVerify: true, // no host name to match: VerifyConnection checks the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			return forward.VerifyChain(cs.PeerCertificates, id.Roots, x509.ExtKeyUsageServerAuth)
		},
	}})
	lns, err := forward.Listen(o.forwards)
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- forward.Addrs(lns)
	}
	routes := make([]forward.Route, len(lns))
	for i, ln := range lns {
		target := o.forwards[i].Target
		routes[i] = forward.Route{Listener: ln, Handle: func(ctx context.Context, c net.Conn) { tunnel(ctx, d, c, target) }}
	}
	return forward.ServeAll(ctx, routes)
}

// tunnel opens a CONNECT stream to target and copies between it and c.
func tunnel(ctx context.Context, d istiohbone.Dialer, c net.Conn, target string) {
	type result struct {
		up  net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		up, err := d.DialContext(ctx, "tcp", target)
		ch <- result{up, err}
	}()
	t := time.NewTimer(dialTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			_ = c.Close()
			return
		}
		forward.Pipe(ctx, c, r.up)
		return
	case <-ctx.Done():
	case <-t.C:
	}
	_ = c.Close()
	// Istio's dialer cannot be cancelled: a late answer still owns a stream, which this
	// goroutine closes when the dial returns (at the latest when the process exits).
	go func() {
		if late := <-ch; late.up != nil {
			_ = late.up.Close()
		}
	}()
}
