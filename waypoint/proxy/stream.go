package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// connInfo is what the HBONE stream tells about the downstream, with what its
// requests log and label derived once per stream.
type connInfo struct {
	dst    netip.AddrPort  // CONNECT :authority (service VIP and port)
	peer   spiffe.Identity // verified client identity
	header http.Header     // CONNECT request headers (baggage, forwarded)

	principal string // peer.String()
	srcWL     string // source workload (sourceOf)
	srcNS     string // source namespace (sourceOf)
}

func newConnInfo(dst netip.AddrPort, peer spiffe.Identity, header http.Header) *connInfo {
	info := &connInfo{dst: dst, peer: peer, header: header, principal: peer.String()}
	info.srcWL, info.srcNS = sourceOf(info)
	return info
}

// streamConn is the proxy's end of a CONNECT stream, carrying its connInfo to the HTTP
// server's ConnContext.
type streamConn struct {
	net.Conn
	info *connInfo
}

// socketPair returns two connected Unix stream sockets: real sockets give pkg/hbone's
// server deadlines and half-close (CloseWrite) on its side and net/http's server a
// plain connection on ours.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	a, err := fileConn(fds[0])
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1])
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "hbone-stream")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("socketpair conn: %w", err)
	}
	return c, nil
}

// streamListener hands stream connections to an http.Server.
type streamListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newStreamListener() *streamListener {
	return &streamListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push delivers c to Accept; false when the listener is closed.
func (l *streamListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return streamAddr{} }

type streamAddr struct{}

func (streamAddr) Network() string { return "hbone" }
func (streamAddr) String() string  { return "hbone-streams" }
