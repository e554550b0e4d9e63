package proxy

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestRawTCPConformance runs x/net's net.Conn conformance suite over a loopback TCP
// connection whose both ends are rawTCP.
func TestRawTCPConformance(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				c = nil
			}
			accepted <- c
		}()
		c1, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2 := <-accepted
		if c2 == nil {
			c1.Close()
			t.Fatal("accept failed")
		}
		a, b := newRawTCP(c1), newRawTCP(c2)
		if _, ok := a.(*rawTCP); !ok {
			t.Fatalf("newRawTCP(%T) did not wrap", c1)
		}
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}
