package hbone

import (
	"io"
	"net"
	"syscall"
)

// rawConnOf returns the raw socket of a plain TCP or Unix connection, for the
// non-blocking fast paths, or nil for any other net.Conn (wrappers may buffer data).
func rawConnOf(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch t := c.(type) {
	case *net.TCPConn:
		sc = t
	case *net.UnixConn:
		sc = t
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeNonblock writes as much of p as the socket takes now, without waiting.
func writeNonblock(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			m, e := syscall.Write(int(fd), p)
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
			case e != nil:
				werr = e
			default:
				n = m
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// appReader reads the application side into pooled frame buffers. On a raw socket it
// takes a buffer only once data is ready, so idle streams pin no buffer.
type appReader struct {
	conn net.Conn
	rc   syscall.RawConn
}

// read returns a pooled buffer holding n bytes at [frameHeaderLen:], reading at most
// max bytes. The buffer is nil when n is 0. err is io.EOF at end of stream.
func (r *appReader) read(max int) (*[]byte, int, error) {
	if r.rc == nil {
		buf := getBuf(frameHeaderLen + max)
		n, err := r.conn.Read((*buf)[frameHeaderLen : frameHeaderLen+max])
		if n == 0 {
			putBuf(buf)
			buf = nil
		}
		return buf, n, err
	}
	var buf *[]byte
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			if buf == nil {
				buf = getBuf(frameHeaderLen + max)
			}
			m, e := syscall.Read(int(fd), (*buf)[frameHeaderLen:frameHeaderLen+max])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				putBuf(buf)
				buf = nil
				return false
			case e != nil:
				rerr = e
			case m == 0:
				rerr = io.EOF
			default:
				n = m
			}
			return true
		}
	})
	if err == nil {
		err = rerr
	}
	if n == 0 {
		putBuf(buf)
		buf = nil
	}
	return buf, n, err
}
