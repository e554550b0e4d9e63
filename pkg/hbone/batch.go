package hbone

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// batchMax bounds one batched write(2) of TLS records; readBatch is the size of one
// read(2) under TLS.
const (
	batchMax  = 256 << 10
	readBatch = 256 << 10
)

// batchConn sits between crypto/tls and the TCP socket. crypto/tls writes each TLS
// record (16 KiB at most) with its own Write; while batching is on, batchConn gathers
// them and writes up to batchMax bytes per syscall (performance.md, item 4). Reads
// likewise fetch up to readBatch bytes per syscall, into a pooled buffer taken only
// once the socket is readable and released when drained, so idle connections pin none.
type batchConn struct {
	net.Conn
	raw syscall.RawConn // nil: reads pass through

	mu  sync.Mutex
	on  bool
	buf *[]byte
	n   int

	// read side: used only by crypto/tls's reader, one call at a time
	rbuf   *[]byte
	rdata  []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, raw: rawConnOf(c)}
	b.readFn = b.readOnce
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
	for {
		if b.rbuf == nil {
			b.rbuf = getBuf(readBatch)
		}
		m, e := syscall.Read(int(fd), (*b.rbuf)[:readBatch])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			putBuf(b.rbuf)
			b.rbuf = nil
			return false
		case e != nil:
			b.rerr = e
		case m == 0:
			b.rerr = io.EOF
		default:
			b.rn = m
		}
		return true
	}
}

// begin starts gathering writes until flush.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.on = true
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
		return b.Conn.Write(p)
	}
	if b.n+len(p) > batchMax {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= batchMax {
			return b.Conn.Write(p)
		}
	}
	if b.buf == nil {
		b.buf = getBuf(batchMax)
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
	_, err := b.Conn.Write((*b.buf)[:b.n])
	putBuf(b.buf)
	b.buf, b.n = nil, 0
	return err
}
