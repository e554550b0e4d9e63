package hbone

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// BenchmarkThroughput measures one Proxy stream over loopback TCP: the app writes
// 256 KiB chunks into the client; the server forwards to an upstream that discards
// (sink) or echoes back to the app (echo; bytes counted one way).
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []string{"sink", "echo"} {
		b.Run(mode, func(b *testing.B) {
			ca := newTestCA(b)
			var up string
			if mode == "echo" {
				up = startEcho(b)
			} else {
				up = startUpstream(b, func(c net.Conn) { drain(c) })
			}
			addr, _ := startServer(b, serverConfig(ca, ca.leaf(b, serverID, time.Time{}, time.Time{})))
			client := newClient(b, clientConfig(ca, ca.leaf(b, clientID, time.Time{}, time.Time{})))
			req := Request{Address: addr, Authority: up, Identities: []spiffe.Identity{serverID}}
			app, peer := tcpPair(b)
			done := make(chan error, 1)
			go func() {
				_, err := client.Proxy(context.Background(), req, peer)
				peer.Close()
				done <- err
			}()
			drained := make(chan struct{})
			go func() {
				drain(app)
				close(drained)
			}()
			chunk := make([]byte, 256<<10)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := app.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			_ = app.(*net.TCPConn).CloseWrite()
			<-drained
			b.StopTimer()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// drain reads r to EOF in 256 KiB reads, as a bulk application (iperf3 uses 128 KiB).
func drain(r io.Reader) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
}

// BenchmarkPlainTLS is the baseline of BenchmarkThroughput (performance.md's
// plain-tls mode): the same flow through a minimal crypto/tls forwarder pair, one TLS
// 1.3 connection per flow, no HTTP/2.
func BenchmarkPlainTLS(b *testing.B) {
	for _, mode := range []string{"sink", "echo"} {
		b.Run(mode, func(b *testing.B) {
			ca := newTestCA(b)
			var up string
			if mode == "echo" {
				up = startEcho(b)
			} else {
				up = startUpstream(b, func(c net.Conn) { drain(c) })
			}
			scert := ca.leaf(b, serverID, time.Time{}, time.Time{})
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*scert}, MinVersion: tls.VersionTLS13})
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				u, err := net.Dial("tcp", up)
				if err != nil {
					return
				}
				defer u.Close()
				forward(c, u)
			}()
			tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
			if err != nil {
				b.Fatal(err)
			}
			defer tc.Close()
			app, peer := tcpPair(b)
			go func() {
				forward(peer, tc)
				peer.Close()
			}()
			drained := make(chan struct{})
			go func() {
				drain(app)
				close(drained)
			}()
			chunk := make([]byte, 256<<10)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := app.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			_ = app.(*net.TCPConn).CloseWrite()
			<-drained
		})
	}
}

// forward copies both ways between a and b with 256 KiB buffers, half-closing.
func forward(a, b net.Conn) {
	done := make(chan struct{})
	half := func(dst, src net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	go func() {
		half(b, a)
		close(done)
	}()
	half(a, b)
	<-done
}
