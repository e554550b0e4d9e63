// Command ambit-tlsfwd is the benchmark's plain-tls baseline: a minimal crypto/tls
// forwarder, one TLS 1.3 connection per flow, no HTTP/2 — the floor of encrypted
// forwarding (/work/shared/spec/performance.md, "Modes"). It runs in one of two roles:
//
//	ambit-tlsfwd --role client --forward 127.0.0.1:8080=10.20.2.3:28080 \
//	    --cert cert.pem --key key.pem --root root.pem
//	ambit-tlsfwd --role server --forward :28080=10.20.2.3:8080 \
//	    --cert cert.pem --key key.pem --root root.pem
//
// The client accepts plain TCP on each mapping's listen address and opens one mutual
// TLS connection per accepted connection to its target; the server accepts mutual TLS
// and opens one plain TCP connection per accepted connection to its target, which its
// flag fixes. Bytes are carried with io.Copy both ways, half-close included. Both
// sides present --cert/--key and check the peer's chain against --root (no identity
// match: the ambient modes' identity checks cost a handshake, which this floor keeps).
// It stops on SIGTERM or SIGINT and exits 1 on bad flags or certificates, or when a
// listener fails.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ambitmesh/ambit/bench/forward"
)

// dialTimeout bounds each TCP connect and TLS handshake.
const dialTimeout = 10 * time.Second

// options are the command-line flags.
type options struct {
	role            string
	forwards        forward.Mappings
	cert, key, root string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ambit-tlsfwd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, nil); err != nil {
		fmt.Fprintln(os.Stderr, "ambit-tlsfwd:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("ambit-tlsfwd", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.role, "role", "", `"client" (plain TCP in, TLS out) or "server" (TLS in, plain TCP out)`)
	fs.Var(&o.forwards, "forward", "listen=target, repeatable, e.g. 127.0.0.1:8080=10.20.2.3:28080")
	fs.StringVar(&o.cert, "cert", "", "certificate chain, PEM (leaf first)")
	fs.StringVar(&o.key, "key", "", "private key, PEM")
	fs.StringVar(&o.root, "root", "", "root certificate(s) the peer's chain must lead to, PEM")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	if o.role != "client" && o.role != "server" {
		return nil, fmt.Errorf("parse flags: --role must be client or server, not %q", o.role)
	}
	if len(o.forwards) == 0 {
		return nil, errors.New("parse flags: at least one --forward is required")
	}
	if err := forward.RequireIdentityFlags(o.cert, o.key, o.root); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("parse flags: unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// run listens on every mapping and forwards until ctx ends. ready, when not nil,
// receives the bound listen addresses once all listen (tests bind port 0).
func run(ctx context.Context, o *options, ready chan<- []string) error {
	id, err := forward.LoadIdentity(o.cert, o.key, o.root)
	if err != nil {
		return err
	}
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
		if o.role == "client" {
			cfg := clientTLS(id)
			routes[i] = forward.Route{Listener: ln, Handle: func(ctx context.Context, c net.Conn) { toTLS(ctx, c, target, cfg) }}
		} else {
			routes[i] = forward.Route{Listener: tls.NewListener(ln, serverTLS(id)),
				Handle: func(ctx context.Context, c net.Conn) { fromTLS(ctx, c, target) }}
		}
	}
	return forward.ServeAll(ctx, routes)
}

// clientTLS: TLS 1.3 only, the forwarder's certificate, the server's chain checked
// against the roots.
func clientTLS(id *forward.Identity) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.Cert},
		InsecureSkipVerify: true, // no host name to match: VerifyConnection checks the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			return forward.VerifyChain(cs.PeerCertificates, id.Roots, x509.ExtKeyUsageServerAuth)
		},
	}
}

// serverTLS: TLS 1.3 only, a client certificate required and checked against the roots.
func serverTLS(id *forward.Identity) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Roots,
	}
}

// toTLS carries the accepted plain connection over a new TLS connection to target.
func toTLS(ctx context.Context, c net.Conn, target string, cfg *tls.Config) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	up, err := d.DialContext(dctx, "tcp", target)
	if err != nil {
		_ = c.Close()
		return
	}
	forward.Pipe(ctx, c, up)
}

// fromTLS completes the accepted TLS connection's handshake and carries it to target
// over plain TCP.
func fromTLS(ctx context.Context, c net.Conn, target string) {
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := c.(*tls.Conn).HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return
	}
	var d net.Dialer
	up, err := d.DialContext(hctx, "tcp", target)
	if err != nil {
		_ = c.Close()
		return
	}
	forward.Pipe(ctx, c, up)
}
