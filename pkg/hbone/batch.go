package hbone

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// batchMax bounds one batched write(2) of TLS records; readBatch bounds one read(2)
// under TLS.
const (
	batchMax  = 256 << 10
	readBatch = 256 << 10
)

// tlsRecordOverhead is what TLS 1.3 adds to each record of at most tlsRecordMax bytes
// (5-byte header, content type, 16-byte AEAD tag).
const (
	tlsRecordOverhead = 22
	tlsRecordMax      = 16 << 10
)

// batchConn sits between crypto/tls and the TCP socket. crypto/tls writes each TLS
// record (16 KiB at most) with its own Write; while batching is on, batchConn gathers
// them and writes up to batchMax bytes per syscall (performance.md, item 4). Reads
// likewise fetch up to readBatch bytes per syscall, into a pooled buffer taken only
// once the socket is readable and released when drained, so idle connections pin none.
// Buffers follow the traffic: a small exchange uses the smallest pooled class both
// ways, bulk transfers the largest. Socket I/O uses raw syscalls (see rawRead).
type batchConn struct {
	net.Conn
	raw syscall.RawConn // nil: plain Read and Write

	mu   sync.Mutex
	on   bool
	hint int // bytes expected in this batch
	buf  *[]byte
	n    int

	// read side: used only by crypto/tls's reader, one call at a time
	rbuf   *[]byte
	rdata  []byte
	rn     int
	rerr   error
	rsize  sizer
	readFn func(uintptr) bool

	// write side: mu held
	wp      []byte
	werr    error
	writeFn func(uintptr) bool
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, raw: rawConnOf(c), rsize: sizer{max: readBatch}}
	b.readFn = b.readOnce
	b.writeFn = b.writeOnce
	return b
}

// Read returns buffered bytes, or reads a batch from the socket.
func (b *batchConn) Read(p []byte) (int, error) {
	if len(b.rdata) == 0 {
		if b.raw == nil || len(p) >= readBatch {
			return b.Conn.Read(p)
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.rdata)
	b.rdata = b.rdata[n:]
	if len(b.rdata) == 0 {
		putBuf(b.rbuf)
		b.rbuf = nil
	}
	return n, nil
}

func (b *batchConn) fill() error {
	b.rn, b.rerr = 0, nil
	err := b.raw.Read(b.readFn)
	if err == nil {
		err = b.rerr
	}
	if b.rn == 0 {
		putBuf(b.rbuf)
		b.rbuf = nil
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	b.rdata = (*b.rbuf)[:b.rn]
	return nil
}

// readOnce is the raw read callback (a method value made once: no allocation per read).
func (b *batchConn) readOnce(fd uintptr) bool {
	if b.rbuf == nil {
		b.rbuf = getBuf(b.rsize.next())
	}
	p := *b.rbuf
	n, err, again := readResult(rawRead(fd, p))
	if again {
		putBuf(b.rbuf)
		b.rbuf = nil
		return false
	}
	b.rn, b.rerr = n, err
	if err == nil {
		b.rsize.observe(n, len(p))
	}
	return true
}

// begin starts gathering writes until flush; about n bytes of records are expected.
func (b *batchConn) begin(n int) {
	b.mu.Lock()
	b.on, b.hint = true, n
	b.mu.Unlock()
}

// Write gathers p while batching, else writes it through.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if err := b.writeAll(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if b.buf != nil && b.n+len(p) > len(*b.buf) && len(*b.buf) < batchMax {
		// More than the hint said: move to a larger buffer.
		nb := getBuf(min(batchMax, b.n+len(p)))
		copy(*nb, (*b.buf)[:b.n])
		putBuf(b.buf)
		b.buf = nb
	}
	if b.buf != nil && b.n+len(p) > len(*b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if b.buf == nil {
		if len(p) >= batchMax {
			if err := b.writeAll(p); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		b.buf = getBuf(min(batchMax, max(b.hint, len(p))))
	}
	b.n += copy((*b.buf)[b.n:], p)
	return len(p), nil
}

// flush writes what was gathered and stops batching.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = false
	return b.flushLocked()
}

func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return nil
	}
	err := b.writeAll((*b.buf)[:b.n])
	putBuf(b.buf)
	b.buf, b.n = nil, 0
	return err
}

// writeAll writes p whole. On a raw socket it uses raw writes (see rawWrite), waiting in
// the poller only when the socket buffer is full; write deadlines apply. mu must be held.
func (b *batchConn) writeAll(p []byte) error {
	if b.raw == nil {
		_, err := b.Conn.Write(p)
		return err
	}
	b.wp, b.werr = p, nil
	err := b.raw.Write(b.writeFn)
	if err == nil {
		err = b.werr
	}
	b.wp, b.werr = nil, nil
	return err
}

// writeOnce is the raw write callback: it writes until done, a failure, or EAGAIN
// (false: wait for the socket to drain).
func (b *batchConn) writeOnce(fd uintptr) bool {
	for len(b.wp) > 0 {
		n, e := rawWrite(fd, b.wp)
		switch {
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			b.werr = os.NewSyscallError("write", e)
			return true
		}
		b.wp = b.wp[n:]
	}
	return true
}

// recordsSize is the size of n bytes of payload once sealed into TLS records.
func recordsSize(n int) int {
	return n + (n/tlsRecordMax+1)*tlsRecordOverhead
}
