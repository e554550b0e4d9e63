package hbone

import (
	"net"
	"sync"
)

// batchMax bounds one batched write(2) of TLS records.
const batchMax = 256 << 10

// batchConn sits between crypto/tls and the TCP socket. crypto/tls writes each TLS
// record (16 KiB at most) with its own Write; while batching is on, batchConn gathers
// them and writes up to batchMax bytes per syscall (performance.md, item 4).
type batchConn struct {
	net.Conn

	mu  sync.Mutex
	on  bool
	buf *[]byte
	n   int
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
