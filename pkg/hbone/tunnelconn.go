package hbone

import (
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/net/http2"
)

// Conn is one established CONNECT stream as a net.Conn: Write sends DATA, Read
// returns received DATA, CloseWrite sends END_STREAM (the peer sees a TCP half-close),
// Read returns io.EOF after the peer's END_STREAM. Close resets the stream
// (RST_STREAM CANCEL) unless it already ended both ways. Addresses are those of the
// carrying TLS connection. Deadlines are supported.
type Conn struct {
	s *stream
}

var _ net.Conn = (*Conn)(nil)

// Read reads received payload.
func (cn *Conn) Read(p []byte) (int, error) {
	s := cn.s
	s.rmu.Lock()
	for len(s.q) == 0 && !s.eof && s.rerr == nil {
		if !s.rdeadline.IsZero() && !time.Now().Before(s.rdeadline) {
			s.rmu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		s.rcond.Wait()
	}
	if len(s.q) == 0 {
		err := s.rerr
		s.rmu.Unlock()
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	ch := &s.q[0]
	n := copy(p, ch.data)
	ch.data = ch.data[n:]
	if len(ch.data) == 0 {
		putBuf(ch.buf)
		s.q[0] = chunk{}
		s.q = s.q[1:]
	}
	s.rmu.Unlock()
	s.received.Add(int64(n))
	s.c.credit(s, n, false)
	return n, nil
}

// Write sends p as DATA frames, blocking on flow control.
func (cn *Conn) Write(p []byte) (int, error) {
	s := cn.s
	written := 0
	for len(p) > 0 {
		n := min(len(p), s.c.maxSendPayload())
		buf := getBuf(frameHeaderLen + n)
		copy((*buf)[frameHeaderLen:], p[:n])
		err := s.sendData((*buf)[:frameHeaderLen+n])
		putBuf(buf)
		if err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// CloseWrite sends END_STREAM; reading continues.
func (cn *Conn) CloseWrite() error { return cn.s.closeSend() }

// Close ends the stream, resetting it if either direction is still open.
func (cn *Conn) Close() error {
	cn.s.abort(net.ErrClosed, http2.ErrCodeCancel, true)
	cn.s.rmu.Lock()
	if cn.s.rtimer != nil {
		cn.s.rtimer.Stop()
	}
	cn.s.rmu.Unlock()
	return nil
}

// LocalAddr is the tunnel connection's local address.
func (cn *Conn) LocalAddr() net.Addr { return cn.s.c.nc.LocalAddr() }

// RemoteAddr is the tunnel connection's remote address.
func (cn *Conn) RemoteAddr() net.Addr { return cn.s.c.nc.RemoteAddr() }

// SetDeadline sets both deadlines.
func (cn *Conn) SetDeadline(t time.Time) error {
	_ = cn.SetReadDeadline(t)
	return cn.SetWriteDeadline(t)
}

// SetReadDeadline makes blocked and future Reads fail with os.ErrDeadlineExceeded
// after t; zero disables.
func (cn *Conn) SetReadDeadline(t time.Time) error {
	s := cn.s
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rdeadline = t
	if s.rtimer != nil {
		s.rtimer.Stop()
		s.rtimer = nil
	}
	if !t.IsZero() {
		s.rtimer = time.AfterFunc(time.Until(t), func() {
			s.rmu.Lock()
			s.rcond.Broadcast()
			s.rmu.Unlock()
		})
	}
	s.rcond.Broadcast()
	return nil
}

// SetWriteDeadline makes Writes blocked on flow control fail with
// os.ErrDeadlineExceeded after t; zero disables.
func (cn *Conn) SetWriteDeadline(t time.Time) error {
	s := cn.s
	c := s.c
	c.mu.Lock()
	s.wdeadline = t
	c.sendCond.Broadcast()
	c.mu.Unlock()
	if !t.IsZero() {
		time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.sendCond.Broadcast()
			c.mu.Unlock()
		})
	}
	return nil
}
