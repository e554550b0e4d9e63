package hbone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 parameters Ambit advertises and uses (performance.md: 8/32 MiB windows, 1 MiB
// frames).
const (
	streamWindow    = 8 << 20  // SETTINGS_INITIAL_WINDOW_SIZE we advertise
	connWindow      = 32 << 20 // connection receive window we grant
	maxFrameRecv    = 1 << 20  // SETTINGS_MAX_FRAME_SIZE we advertise
	maxFrameSend    = 1 << 20  // largest DATA payload we send, if the peer allows
	maxHeaderList   = 64 << 10 // SETTINGS_MAX_HEADER_LIST_SIZE we advertise
	maxPendingCtl   = 1 << 20  // unsent control frames before we give up on a peer
	defaultWindow   = 65535    // RFC 9113 initial windows
	defaultMaxFrame = 16384    // RFC 9113 initial SETTINGS_MAX_FRAME_SIZE
	maxWindow       = 1<<31 - 1
	maxStreamID     = 1<<31 - 1
)

// h2conn is one HTTP/2 connection, client or server side: a read loop dispatching
// frames, flow control both ways, and a writer discipline in which the read loop never
// blocks on a write (control frames it produces are queued and written by whichever
// writer holds the socket next, or by the flush goroutine).
//
// Lock order: wmu → pmu → mu → stream.rmu.
type h2conn struct {
	nc       net.Conn      // TLS connection (plain in fuzzing)
	bc       *batchConn    // record batching under TLS, or nil
	fr       *http2.Framer // reads frames from nc
	isClient bool

	wmu     sync.Mutex // serializes writes to nc
	pendOut []byte     // wmu: copy of pend being written

	pmu      sync.Mutex
	pend     []byte        // pmu: encoded control frames not yet written
	wfr      *http2.Framer // pmu: encodes control frames into pend
	henc     *hpack.Encoder
	hbuf     bytes.Buffer
	nextID   uint32 // pmu: client's next stream id
	pendFlag atomic.Bool
	kick     chan struct{}

	mu             sync.Mutex
	sendCond       sync.Cond
	streams        map[uint32]*stream
	sendWin        int64 // connection send window
	recvAvail      int64 // bytes the peer may still send on the connection
	recvUnacked    int64 // consumed bytes not yet returned by WINDOW_UPDATE
	peerInitWin    int64
	peerMaxFrame   int
	peerMaxStreams uint32
	highestID      uint32 // highest stream id opened (either side)
	goAway         bool   // no new streams
	closed         bool
	closeErr       error
	active         int // client: reserved or open streams
	idleTimeout    time.Duration
	idleTimer      *time.Timer
	onClose        func(*h2conn)

	closedCh chan struct{}
}

type pendWriter struct{ c *h2conn }

func (w pendWriter) Write(p []byte) (int, error) {
	w.c.pend = append(w.c.pend, p...)
	return len(p), nil
}

func newConn(nc net.Conn, bc *batchConn, isClient bool) *h2conn {
	c := &h2conn{
		nc: nc, bc: bc, isClient: isClient,
		kick:           make(chan struct{}, 1),
		closedCh:       make(chan struct{}),
		streams:        make(map[uint32]*stream),
		sendWin:        defaultWindow,
		recvAvail:      connWindow, // the WINDOW_UPDATE goes out with our SETTINGS
		peerInitWin:    defaultWindow,
		peerMaxFrame:   defaultMaxFrame,
		peerMaxStreams: math.MaxUint32,
		nextID:         1,
	}
	c.sendCond.L = &c.mu
	c.fr = http2.NewFramer(nil, nc)
	c.fr.SetMaxReadFrameSize(maxFrameRecv)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderList
	c.wfr = http2.NewFramer(pendWriter{c}, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// writePreface sends the client preface (client only), our SETTINGS and the
// connection WINDOW_UPDATE.
func (c *h2conn) writePreface(settings ...http2.Setting) error {
	c.pmu.Lock()
	if c.isClient {
		c.pend = append(c.pend, http2.ClientPreface...)
	}
	err := c.wfr.WriteSettings(settings...)
	if err == nil {
		err = c.wfr.WriteWindowUpdate(0, connWindow-defaultWindow)
	}
	c.pmu.Unlock()
	if err != nil {
		return fmt.Errorf("encode preface: %w", err)
	}
	c.pendFlag.Store(true)
	return c.flushPending()
}

// queueCtl encodes control frames into the pending buffer. It never blocks on I/O.
func (c *h2conn) queueCtl(encode func(*http2.Framer) error) error {
	c.pmu.Lock()
	err := encode(c.wfr)
	over := len(c.pend) > maxPendingCtl
	c.pmu.Unlock()
	c.pendFlag.Store(true)
	if err != nil {
		return err
	}
	if over {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// signal asks the flush goroutine to write pending control frames.
func (c *h2conn) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// flushLoop writes control frames queued by the read loop until the connection closes.
func (c *h2conn) flushLoop() {
	for {
		select {
		case <-c.kick:
			if c.flushPending() != nil {
				return
			}
		case <-c.closedCh:
			return
		}
	}
}

// flushPending writes pending control frames, blocking for the socket.
func (c *h2conn) flushPending() error {
	for c.pendFlag.Load() {
		c.wmu.Lock()
		err := c.writeLocked(nil)
		c.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFrame writes one whole frame (header included) after any pending control
// frames, with one tls.Conn.Write, its TLS records batched into few syscalls.
func (c *h2conn) writeFrame(b []byte) error {
	c.wmu.Lock()
	err := c.writeLocked(b)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	return c.flushPending()
}

func (c *h2conn) writeLocked(b []byte) error {
	c.pendOut = c.pendOut[:0]
	if c.pendFlag.Load() {
		c.pmu.Lock()
		c.pendOut = append(c.pendOut, c.pend...)
		c.pend = c.pend[:0]
		c.pendFlag.Store(false)
		c.pmu.Unlock()
	}
	if c.bc != nil {
		c.bc.begin(recordsSize(len(c.pendOut)) + recordsSize(len(b)))
	}
	var err error
	if len(c.pendOut) > 0 {
		_, err = c.nc.Write(c.pendOut)
	}
	if err == nil && len(b) > 0 {
		_, err = c.nc.Write(b)
	}
	if c.bc != nil {
		if ferr := c.bc.flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		c.close(fmt.Errorf("write: %w", err))
		return fmt.Errorf("%w: write: %w", ErrConnClosed, err)
	}
	return nil
}

// encodeHeadersLocked encodes a header block as HEADERS (+ CONTINUATION) into pend.
// pmu must be held.
func (c *h2conn) encodeHeadersLocked(id uint32, fields []hpack.HeaderField, end bool) error {
	c.hbuf.Reset()
	for _, f := range fields {
		if err := c.henc.WriteField(f); err != nil {
			return fmt.Errorf("encode headers: %w", err)
		}
	}
	block := c.hbuf.Bytes()
	for first := true; first || len(block) > 0; first = false {
		frag := block[:min(len(block), defaultMaxFrame)]
		block = block[len(frag):]
		var err error
		if first {
			err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
		} else {
			err = c.wfr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return fmt.Errorf("encode headers: %w", err)
		}
	}
	c.pendFlag.Store(true)
	return nil
}

// close tears the connection down, aborting every stream with err. Idempotent.
func (c *h2conn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.goAway, c.closeErr = true, true, err
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.sendCond.Broadcast()
	c.mu.Unlock()
	_ = c.nc.Close()
	close(c.closedCh)
	serr := fmt.Errorf("%w: %w", ErrConnClosed, err)
	for _, s := range streams {
		s.abort(serr, 0, false)
	}
	if c.onClose != nil {
		c.onClose(c)
	}
}

// goAwayClose sends GOAWAY (best effort: never waits behind a stuck writer) and closes.
func (c *h2conn) goAwayClose(code http2.ErrCode, err error) {
	c.mu.Lock()
	last, closed := c.highestID, c.closed
	if c.isClient {
		last = 0 // we accept no peer-initiated streams
	}
	c.mu.Unlock()
	if closed {
		return
	}
	_ = c.queueCtl(func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
	if c.wmu.TryLock() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.writeLocked(nil)
		c.wmu.Unlock()
	}
	c.close(err)
}

// finish closes the connection after the read loop ended with err.
func (c *h2conn) finish(err error) {
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		c.goAwayClose(http2.ErrCode(ce), fmt.Errorf("protocol error: %w", err))
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.goAwayClose(http2.ErrCodeFrameSize, err)
	case errors.Is(err, io.EOF):
		c.close(fmt.Errorf("peer closed: %w", err))
	default:
		c.close(err)
	}
}

// removeLocked forgets a stream closed both ways; it reports whether the connection,
// draining after GOAWAY, should now close. mu must be held.
func (c *h2conn) removeLocked(s *stream) bool {
	if s.removed || !s.sentEnd || !s.recvEnd {
		return false
	}
	s.removed = true
	delete(c.streams, s.id)
	if c.isClient {
		return c.releaseLocked()
	}
	return false
}

// newStreamLocked registers stream id. mu must be held.
func (c *h2conn) newStreamLocked(id uint32) *stream {
	s := newStream(c, id, c.peerInitWin)
	c.streams[id] = s
	c.highestID = max(c.highestID, id)
	return s
}

// isIdleID reports whether id names a stream that was never opened.
func (c *h2conn) isIdleID(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return id%2 == 0 || id > c.highestID
}

var (
	errIdle     = errors.New("idle timeout")
	errDrained  = errors.New("drained after goaway")
	errStopped  = errors.New("peer stopped reading the stream")
	errDeadline = os.ErrDeadlineExceeded
)
