package hbone

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
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

// nbWriter writes to a raw socket without waiting; its callback is made once so a
// write allocates nothing.
type nbWriter struct {
	rc  syscall.RawConn
	p   []byte
	n   int
	err error
	fn  func(uintptr) bool
}

func newNBWriter(rc syscall.RawConn) *nbWriter {
	w := &nbWriter{rc: rc}
	w.fn = w.writeOnce
	return w
}

// write writes as much of p as the socket takes now.
func (w *nbWriter) write(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	w.p = nil
	if err != nil {
		return 0, err
	}
	return w.n, w.err
}

func (w *nbWriter) writeOnce(fd uintptr) bool {
	m, err := rawWrite(fd, w.p)
	switch {
	case err == syscall.EAGAIN:
	case err != 0:
		w.err = os.NewSyscallError("write", err)
	default:
		w.n = m
	}
	return true
}

// genericReadMax bounds reads from connections without a raw socket.
const genericReadMax = 64 << 10

// appReader reads the application side into pooled frame buffers. On a raw socket it
// takes a buffer only once data is ready, so idle streams pin no buffer, and sizes it
// to the traffic (see sizer).
type appReader struct {
	conn  net.Conn
	rc    syscall.RawConn
	buf   *[]byte
	limit int
	n     int
	err   error
	size  sizer
	fn    func(uintptr) bool
}

func newAppReader(c net.Conn) *appReader {
	r := &appReader{conn: c, rc: rawConnOf(c), size: sizer{max: maxFrameSend}}
	r.fn = r.readOnce
	return r
}

// read returns a pooled buffer holding n bytes at [frameHeaderLen:], reading at most
// max bytes. The buffer is nil when n is 0. err is io.EOF at end of stream.
func (r *appReader) read(max int) (*[]byte, int, error) {
	if r.rc == nil {
		max = min(max, genericReadMax) // a blocked Read pins its buffer
		buf := getBuf(frameHeaderLen + max)
		n, err := r.conn.Read((*buf)[frameHeaderLen : frameHeaderLen+max])
		if n == 0 {
			putBuf(buf)
			buf = nil
		}
		return buf, n, err
	}
	r.buf, r.limit, r.n, r.err = nil, min(max, r.size.next()), 0, nil
	err := r.rc.Read(r.fn)
	if err == nil {
		err = r.err
	}
	buf := r.buf
	r.buf = nil
	if r.n == 0 {
		putBuf(buf)
		buf = nil
	}
	return buf, r.n, err
}

func (r *appReader) readOnce(fd uintptr) bool {
	if r.buf == nil {
		r.buf = getBuf(frameHeaderLen + r.limit)
	}
	n, err, again := readResult(rawRead(fd, (*r.buf)[frameHeaderLen:frameHeaderLen+r.limit]))
	if again {
		putBuf(r.buf)
		r.buf = nil
		return false
	}
	r.n, r.err = n, err
	if err == nil {
		r.size.observe(n, r.limit)
	}
	return true
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket, retried on
// EINTR, without the runtime's syscall bookkeeping (entersyscall/exitsyscall): the
// calls never block, and that bookkeeping wakes the runtime's sysmon thread out of its
// idle sleep on every call after the process was idle — at a thousand small requests a
// second, sysmon's wake-ups and 20 µs polls were a quarter of the proxy's CPU.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// readResult classifies one non-blocking read(2): again when the socket had nothing to
// read (EAGAIN), io.EOF on an orderly shutdown, else the byte count or the error.
func readResult(m int, e syscall.Errno) (n int, err error, again bool) {
	switch {
	case e == syscall.EAGAIN:
		return 0, nil, true
	case e != 0:
		return 0, os.NewSyscallError("read", e), false
	case m == 0:
		return 0, io.EOF, false
	}
	return m, nil, false
}
