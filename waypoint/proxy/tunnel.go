package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// tunnelConn is one CONNECT stream as a net.Conn. Deadlines are not supported (the
// transports over it use contexts); CloseWrite ends the request body (END_STREAM).
type tunnelConn struct {
	w      *bufPipe // the CONNECT request body
	r      io.ReadCloser
	cancel context.CancelFunc
	remote tunnelAddr
	once   sync.Once
}

func (c *tunnelConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *tunnelConn) Write(b []byte) (int, error) { return c.w.write(b) }

// ReadFrom copies r into the tunnel through a pooled buffer. net/http's transport
// sends a request body with it (io.Copy would allocate a buffer per request).
func (c *tunnelConn) ReadFrom(r io.Reader) (int64, error) {
	bp := tunnelBufs.Get().(*[]byte)
	defer tunnelBufs.Put(bp)
	return io.CopyBuffer(writerOnly{c}, r, *bp)
}

func (c *tunnelConn) CloseWrite() error {
	c.w.closeWrite(false)
	return nil
}

func (c *tunnelConn) Close() error {
	c.once.Do(func() {
		c.w.closeWrite(true)
		c.r.Close()
		c.cancel()
	})
	return nil
}

func (c *tunnelConn) LocalAddr() net.Addr              { return tunnelAddr("waypoint") }
func (c *tunnelConn) RemoteAddr() net.Addr             { return c.remote }
func (c *tunnelConn) SetDeadline(time.Time) error      { return nil }
func (c *tunnelConn) SetReadDeadline(time.Time) error  { return nil }
func (c *tunnelConn) SetWriteDeadline(time.Time) error { return nil }

// writerOnly hides ReadFrom from io.CopyBuffer (which would recurse).
type writerOnly struct{ io.Writer }

var tunnelBufs = sync.Pool{New: func() any {
	b := make([]byte, 16<<10)
	return &b
}}

// pipeBody is the reading end of a bufPipe as a request body; Close makes later
// writes fail.
type pipeBody struct{ p *bufPipe }

func (b pipeBody) Read(p []byte) (int, error) { return b.p.read(p) }

func (b pipeBody) Close() error {
	b.p.closeRead()
	return nil
}

type tunnelAddr string

func (a tunnelAddr) Network() string { return "hbone" }
func (a tunnelAddr) String() string  { return string(a) }

// connectError marks a failure to open the upstream tunnel (Envoy's connect-failure).
type connectError struct{ err error }

func (e *connectError) Error() string { return "upstream connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }
