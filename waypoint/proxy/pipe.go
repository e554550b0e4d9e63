package proxy

import (
	"io"
	"net"
	"os"
	"sync"
)

// pipeLimit bounds the bytes a bufPipe queues: a writer waits beyond it
// (back-pressure). pipeKeepCap is the largest queue buffer kept once drained.
const (
	pipeLimit   = 256 << 10
	pipeKeepCap = 32 << 10
)

// bufPipe is a bounded in-memory byte queue between one writer and one reader: the
// body of an upstream tunnel's CONNECT request, which x/net's HTTP/2 client reads
// and sends as DATA frames. Unlike io.Pipe, whose Write waits until the reader took
// everything, a Write returns as soon as its bytes are queued, so the writes of one
// HTTP/1.1 request (net/http flushes the header before a streamed body) usually
// leave in one DATA frame, and the writer never waits on the reader's goroutine.
type bufPipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	off     int  // read offset in buf
	eof     bool // the writer is done: reads return io.EOF once drained
	wclosed bool // the writing end was closed: its writes fail with net.ErrClosed
	rclosed bool // the reader is gone: reads fail, writes get io.ErrClosedPipe
	waiting int  // goroutines in cond.Wait
}

func newBufPipe() *bufPipe {
	p := &bufPipe{}
	p.cond.L = &p.mu
	return p
}

// read returns queued bytes, waiting for some.
func (p *bufPipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.off == len(p.buf) {
		switch {
		case p.rclosed:
			return 0, net.ErrClosed
		case p.eof:
			return 0, io.EOF
		case len(b) == 0:
			return 0, nil
		}
		p.wait()
	}
	if p.rclosed {
		return 0, net.ErrClosed
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.off = 0
		p.buf = p.buf[:0]
		if cap(p.buf) > pipeKeepCap {
			p.buf = nil
		}
	}
	p.wake()
	return n, nil
}

// write queues b, waiting while the queue is full.
func (p *bufPipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	written := 0
	for {
		switch {
		case p.wclosed:
			return written, net.ErrClosed
		case p.eof:
			return written, errWriteAfterClose
		case p.rclosed:
			return written, io.ErrClosedPipe
		}
		if len(b) == 0 {
			return written, nil
		}
		space := pipeLimit - (len(p.buf) - p.off)
		if space <= 0 {
			p.wait()
			continue
		}
		k := min(space, len(b))
		if p.off > 0 && len(p.buf)+k > cap(p.buf) {
			p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
			p.off = 0
		}
		p.buf = append(p.buf, b[:k]...)
		b = b[k:]
		written += k
		p.wake()
	}
}

// errWriteAfterClose: a write after closeWrite.
var errWriteAfterClose = &net.OpError{Op: "write", Net: "hbone", Err: os.ErrClosed}

func (p *bufPipe) wait() {
	p.waiting++
	p.cond.Wait()
	p.waiting--
}

// wake wakes the other side if it waits; mu must be held.
func (p *bufPipe) wake() {
	if p.waiting > 0 {
		p.cond.Broadcast()
	}
}

// closeWrite ends the bytes (the reader gets io.EOF after the queue); closed also
// fails later writes with net.ErrClosed.
func (p *bufPipe) closeWrite(closed bool) {
	p.mu.Lock()
	p.eof = true
	p.wclosed = p.wclosed || closed
	p.wake()
	p.mu.Unlock()
}

// closeRead drops the queue: later reads fail, and so do writes.
func (p *bufPipe) closeRead() {
	p.mu.Lock()
	p.rclosed = true
	p.buf, p.off = nil, 0
	p.wake()
	p.mu.Unlock()
}
