package hbone

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// stream is one CONNECT stream. Received DATA goes either to a sink (the application
// socket, for Proxy and the server) or to a queue read by Conn.Read.
type stream struct {
	c  *h2conn
	id uint32

	// guarded by c.mu
	sendWin     int64
	recvAvail   int64
	recvUnacked int64
	sentEnd     bool // END_STREAM or RST_STREAM sent (or no more sending)
	recvEnd     bool // END_STREAM or RST_STREAM received
	stopped     bool // peer asked us to stop sending (RST_STREAM NO_ERROR)
	removed     bool
	err         error // abort reason
	wdeadline   time.Time

	gotResp bool               // read loop only
	respCh  chan int           // client: final response status
	aborted chan struct{}      // closed by abort
	cancel  context.CancelFunc // server: cancels the Connect context; set before use

	rmu       sync.Mutex
	rcond     sync.Cond
	q         []chunk
	eof       bool  // END_STREAM delivered into q
	rerr      error // abort reason, receive side
	writing   bool  // someone is writing to sink outside rmu
	sink      net.Conn
	sinkNB    *nbWriter // non-blocking writer of a raw-socket sink
	writerOn  bool
	recvDone  chan struct{} // sink mode: all received bytes written and CloseWrite done, or aborted
	recvFin   bool
	rdeadline time.Time
	rtimer    *time.Timer
	received  atomic.Int64
	writerWG  sync.WaitGroup
}

// chunk is received payload not yet written: data is a sub-slice of the pooled buf.
type chunk struct {
	buf  *[]byte
	data []byte
}

func newStream(c *h2conn, id uint32, sendWin int64) *stream {
	s := &stream{c: c, id: id, sendWin: sendWin, recvAvail: streamWindow,
		respCh: make(chan int, 1), aborted: make(chan struct{}), recvDone: make(chan struct{})}
	s.rcond.L = &s.rmu
	return s
}

// deliver hands a received payload (owned buffer buf, nil for none) to the stream, in
// read-loop context. With a raw-socket sink and nothing queued it writes the payload
// straight away with one non-blocking write; what does not fit is queued for the
// stream's writer goroutine (performance.md, item 2).
func (s *stream) deliver(buf *[]byte, data []byte, end bool) {
	s.rmu.Lock()
	if s.rerr != nil || s.eof {
		s.rmu.Unlock()
		putBuf(buf)
		s.c.credit(nil, len(data), true)
		return
	}
	if len(data) > 0 && s.sinkNB != nil && len(s.q) == 0 && !s.writing {
		s.writing = true
		s.rmu.Unlock()
		n, err := s.sinkNB.write(data)
		if n > 0 {
			s.received.Add(int64(n))
			s.c.credit(s, n, true)
			data = data[n:]
		}
		s.rmu.Lock()
		s.writing = false
		if err != nil || s.rerr != nil {
			s.finishLocked()
			s.rmu.Unlock()
			putBuf(buf)
			s.c.credit(nil, len(data), true)
			if err != nil {
				s.abort(fmt.Errorf("write to application: %w", err), http2.ErrCodeCancel, true)
			}
			return
		}
	}
	if len(data) > 0 {
		s.q = append(s.q, chunk{buf: buf, data: data})
	} else {
		putBuf(buf)
	}
	s.eof = end
	s.dispatchLocked()
	s.rcond.Broadcast()
	s.rmu.Unlock()
}

// dispatchLocked, in sink mode, starts the writer for queued data or completes the
// receive side (CloseWrite) at end of stream. rmu must be held.
func (s *stream) dispatchLocked() {
	if s.sink == nil || s.writing || s.writerOn {
		return
	}
	if len(s.q) > 0 {
		s.writerOn = true
		s.writerWG.Add(1)
		go s.writeLoop()
		return
	}
	if s.eof {
		closeWrite(s.sink)
		s.finishLocked()
	}
}

// writeLoop drains the queue into the sink with blocking writes, then half-closes it.
func (s *stream) writeLoop() {
	defer s.writerWG.Done()
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		for len(s.q) == 0 && !s.eof && s.rerr == nil {
			s.rcond.Wait()
		}
		if s.rerr != nil {
			s.finishLocked()
			return
		}
		if len(s.q) == 0 {
			closeWrite(s.sink)
			s.finishLocked()
			return
		}
		ch := s.q[0]
		s.q[0] = chunk{}
		s.q = s.q[1:]
		s.writing = true
		s.rmu.Unlock()
		n, err := s.sink.Write(ch.data)
		putBuf(ch.buf)
		s.received.Add(int64(n))
		s.c.credit(s, len(ch.data), false)
		if err != nil {
			s.abort(fmt.Errorf("write to application: %w", err), http2.ErrCodeCancel, true)
		}
		s.rmu.Lock()
		s.writing = false
	}
}

// finishLocked marks the receive side complete. rmu must be held.
func (s *stream) finishLocked() {
	if !s.recvFin {
		s.recvFin = true
		close(s.recvDone)
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// abort ends the stream in both directions with err, discarding queued data, and
// sends RST_STREAM(code) if sendRST and the stream is still open. Safe from any
// goroutine, including the read loop (it never blocks on I/O).
func (s *stream) abort(err error, code http2.ErrCode, sendRST bool) {
	c := s.c
	c.mu.Lock()
	if s.err != nil {
		c.mu.Unlock()
		return
	}
	s.err = err
	rst := sendRST && !(s.sentEnd && s.recvEnd) && !c.closed
	s.sentEnd, s.recvEnd = true, true
	closeConn := c.removeLocked(s)
	c.sendCond.Broadcast()
	c.mu.Unlock()
	close(s.aborted)

	s.rmu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	discarded := 0
	for _, ch := range s.q {
		discarded += len(ch.data)
		putBuf(ch.buf)
	}
	s.q = nil
	if !s.writing {
		s.finishLocked()
	}
	sink := s.sink
	s.rcond.Broadcast()
	s.rmu.Unlock()

	c.credit(nil, discarded, true)
	if sink != nil {
		// Wake the sender blocked reading the app and the writer blocked writing to it:
		// an aborted stream delivers nothing more (its queue was discarded above).
		_ = sink.SetDeadline(time.Unix(1, 0))
	}
	if s.cancel != nil {
		s.cancel()
	}
	if rst {
		_ = c.queueCtl(func(fr *http2.Framer) error { return fr.WriteRSTStream(s.id, code) })
		c.signal()
	}
	if closeConn {
		c.goAwayClose(http2.ErrCodeNo, errDrained)
	}
}

// stopSend wakes a sender after the peer asked it to stop (RST_STREAM NO_ERROR).
func (s *stream) stopSend() {
	s.rmu.Lock()
	sink := s.sink
	s.rmu.Unlock()
	if sink != nil {
		_ = sink.SetReadDeadline(time.Unix(1, 0))
	}
}

// failed returns the abort reason, if any.
func (s *stream) failed() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

// sendData sends b[frameHeaderLen:] as DATA frames, each written whole with its header
// in front of the payload, as windows allow. b[:frameHeaderLen] is scratch.
func (s *stream) sendData(b []byte) error {
	n := len(b) - frameHeaderLen
	for off := 0; off < n; {
		k, err := s.c.reserve(s, n-off)
		if err != nil {
			return err
		}
		f := b[off : off+frameHeaderLen+k]
		putFrameHeader(f, k, http2.FrameData, 0, s.id)
		if err := s.c.writeFrame(f); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// closeSend sends END_STREAM (an empty DATA frame): the tunnel form of a TCP FIN.
func (s *stream) closeSend() error {
	c := s.c
	c.mu.Lock()
	if s.err != nil || s.stopped || s.sentEnd {
		err := s.err
		c.mu.Unlock()
		return err
	}
	s.sentEnd = true
	closeConn := c.removeLocked(s)
	c.mu.Unlock()
	var hdr [frameHeaderLen]byte
	putFrameHeader(hdr[:], 0, http2.FrameData, http2.FlagDataEndStream, s.id)
	err := c.writeFrame(hdr[:])
	if closeConn {
		c.goAwayClose(http2.ErrCodeNo, errDrained)
	}
	return err
}

func putFrameHeader(b []byte, length int, typ http2.FrameType, flags http2.Flags, id uint32) {
	b[0], b[1], b[2] = byte(length>>16), byte(length>>8), byte(length)
	b[3], b[4] = byte(typ), byte(flags)
	binary.BigEndian.PutUint32(b[5:9], id&maxStreamID)
}
