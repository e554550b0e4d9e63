// Command istio-hbone-dial opens one HBONE tunnel with Istio's own Go HBONE dialer
// (istio.io/istio/pkg/hbone), sends a request through it and prints the answer. The
// interop tests run it inside a pod to show that Istio's client, holding a certificate
// from Ambit's CA, reaches a pod through Ambit's ztunnel.
//
//	istio-hbone-dial --proxy 10.20.1.2:15008 --target 10.20.1.2:8080 \
//	    --cert cert.pem --key key.pem --root root.pem [--send BODY] [--raw] [--timeout 30s]
//
// Without --raw it writes an HTTP/1.1 POST of --send to the target (Connection: close),
// reads the whole response and prints it, status line and headers included. With --raw
// it writes --send as is and prints everything the target sends until it closes. The
// proxy's certificate chain is checked against --root; its SAN is not (Istio's dialer
// does not check it either). It exits 1 on any error: flags, certificates, the CONNECT
// (refused handshake, non-200 answer), or an incomplete response.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	istiohbone "istio.io/istio/pkg/hbone"
	istiolog "istio.io/istio/pkg/log"
)

// options are the command-line flags.
type options struct {
	proxy, target         string
	cert, key, root, send string
	raw                   bool
	timeout               time.Duration
}

func main() {
	// Istio's log package writes to stdout by default; stdout carries only the answer.
	logOpts := istiolog.DefaultOptions()
	logOpts.OutputPaths = []string{"stderr"}
	if err := istiolog.Configure(logOpts); err != nil {
		fmt.Fprintln(os.Stderr, "istio-hbone-dial: configure istio log:", err)
		os.Exit(1)
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "istio-hbone-dial:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	tlsCfg, err := clientTLS(o.cert, o.key, o.root)
	if err != nil {
		return err
	}
	d := istiohbone.NewDialer(istiohbone.Config{ProxyAddress: o.proxy, TLS: tlsCfg})
	deadline := time.Now().Add(o.timeout)
	c, err := dial(d, o.target, o.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	var out []byte
	if o.raw {
		out, err = exchangeRaw(c, o.send)
	} else {
		out, err = exchangeHTTP(c, o.target, o.send)
	}
	if _, werr := stdout.Write(out); werr != nil {
		err = errors.Join(err, fmt.Errorf("write stdout: %w", werr))
	}
	return err
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("istio-hbone-dial", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.proxy, "proxy", "", "HBONE proxy address, ip:15008")
	fs.StringVar(&o.target, "target", "", "address to CONNECT to through the proxy, ip:port")
	fs.StringVar(&o.cert, "cert", "", "client certificate chain, PEM (leaf first)")
	fs.StringVar(&o.key, "key", "", "client private key, PEM")
	fs.StringVar(&o.root, "root", "", "root certificate(s) the proxy's chain must lead to, PEM")
	fs.StringVar(&o.send, "send", "", "HTTP request body (or the raw bytes with --raw)")
	fs.BoolVar(&o.raw, "raw", false, "send --send as raw bytes and read until the target closes")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on the whole exchange")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	for _, f := range []struct{ name, value string }{
		{"proxy", o.proxy}, {"target", o.target}, {"cert", o.cert}, {"key", o.key}, {"root", o.root},
	} {
		if f.value == "" {
			return nil, fmt.Errorf("parse flags: --%s is required", f.name)
		}
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("parse flags: unexpected arguments %q", fs.Args())
	}
	if o.timeout <= 0 {
		return nil, errors.New("parse flags: --timeout must be positive")
	}
	return o, nil
}

// clientTLS is the TLS configuration handed to Istio's dialer, shaped like the one
// Istio's echo forwarder builds: the client certificate, and the proxy's chain verified
// against the roots without a host name (HBONE identities are URI SANs).
func clientTLS(certFile, keyFile, rootFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("load roots: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("load roots: no certificate in %s", rootFile)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // no host name to match: VerifyConnection checks the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, roots)
		},
	}, nil
}

func verifyChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("verify proxy chain: no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify proxy chain: %w", err)
	}
	return nil
}

// dial opens the tunnel. Istio's dialer ignores its context, so the wait is bounded
// here; on timeout the process exits and takes the pending dial with it.
func dial(d istiohbone.Dialer, target string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := d.DialContext(context.Background(), "tcp", target)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("hbone connect %s: %w", target, r.err)
		}
		return r.c, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("hbone connect %s: no answer within %v", target, timeout)
	}
}

// exchangeHTTP writes a POST of body and reads one complete response (Content-Length
// or chunked, as net/http frames it), returning its raw bytes.
func exchangeHTTP(c net.Conn, target, body string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+target+"/", bytes.NewBufferString(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Close = true
	req.Header.Set("User-Agent", "istio-hbone-dial")
	req.Header.Set("Content-Type", "text/plain")
	if err := req.Write(c); err != nil {
		return nil, fmt.Errorf("write request: %w", err)
	}
	var raw bytes.Buffer
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(c, &raw)), req)
	if err != nil {
		return raw.Bytes(), fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return raw.Bytes(), fmt.Errorf("read response body: %w", err)
	}
	return raw.Bytes(), nil
}

// exchangeRaw writes payload and reads until the target closes the tunnel.
func exchangeRaw(c net.Conn, payload string) ([]byte, error) {
	if _, err := io.WriteString(c, payload); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return out, fmt.Errorf("read: %w", err)
	}
	return out, nil
}
