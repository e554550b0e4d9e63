package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawTCP is an upstream tunnel's TCP connection whose reads and writes are raw
// non-blocking read(2) and write(2), waiting for readiness through the runtime's
// poller only on EAGAIN, as pkg/hbone does for its own sockets: the runtime's
// syscall bookkeeping (entersyscall/exitsyscall) wakes its sysmon thread after every
// idle period, which at a thousand small requests a second cost more CPU than the
// calls. Deadlines, Close and addresses are the TCP connection's. As with a socket,
// concurrent reads (and writes) are serialized.
type rawTCP struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu  sync.Mutex
	rp   []byte
	rn   int
	rerr error
	rfn  func(uintptr) bool

	wmu  sync.Mutex
	wp   []byte
	wn   int
	werr error
	wfn  func(uintptr) bool
}

// newRawTCP wraps c when it is a TCP connection, else returns it unchanged.
func newRawTCP(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCP{TCPConn: tc, rc: rc}
	r.rfn, r.wfn = r.readOnce, r.writeOnce
	return r
}

func (r *rawTCP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.rfn)
	r.rp = nil
	if err != nil {
		return 0, err
	}
	return r.rn, r.rerr
}

func (r *rawTCP) readOnce(fd uintptr) bool {
	n, e := rawSyscall(syscall.SYS_READ, fd, r.rp)
	switch {
	case e == syscall.EAGAIN:
		return false
	case e != 0:
		r.rerr = os.NewSyscallError("read", e)
	case n == 0:
		r.rerr = io.EOF
	default:
		r.rn = n
	}
	return true
}

func (r *rawTCP) Write(p []byte) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.wp, r.wn, r.werr = p, 0, nil
	var err error
	if len(p) > 0 {
		err = r.rc.Write(r.wfn)
	}
	n := r.wn
	r.wp = nil
	if err == nil {
		err = r.werr
	}
	return n, err
}

// writeOnce writes what the socket takes; false (wait for writability) while some
// of wp is left.
func (r *rawTCP) writeOnce(fd uintptr) bool {
	for r.wn < len(r.wp) {
		n, e := rawSyscall(syscall.SYS_WRITE, fd, r.wp[r.wn:])
		switch {
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			r.werr = os.NewSyscallError("write", e)
			return true
		}
		r.wn += n
	}
	return true
}

// rawSyscall is read(2) or write(2) of p on a non-blocking socket, retried on EINTR,
// without the runtime's syscall bookkeeping: the calls never block.
func rawSyscall(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
