package proxy

import (
	"io"
	"sync"
	"time"
)

const (
	// updateHold is how long WINDOW_UPDATE frames may wait for other frames to ride
	// along with. Windows are MiBs and updates come every 4 KiB read, so a held update
	// never stalls a sender.
	updateHold = 5 * time.Millisecond
	// maxHeld bounds the held bytes; more are written at once.
	maxHeld = 512
	// maxMerged bounds a write that held bytes are copied in front of; larger writes go
	// out after the held bytes in their own write.
	maxMerged         = 16 << 10
	frameWindowUpdate = 0x8
)

// updateHolder sits between x/net's HTTP/2 client and the tunnel's TLS connection.
// x/net writes a WINDOW_UPDATE on its own (a TLS record and a write(2)) every 4 KiB an
// upstream response body is read: about every fourth 1 KiB response. The holder keeps
// writes made only of WINDOW_UPDATE frames and sends them in front of the next write
// (the next request's DATA), or after updateHold at the latest. Order is preserved.
type updateHolder struct {
	w io.Writer

	mu      sync.Mutex
	held    []byte
	scratch []byte
	timer   *time.Timer
	armed   bool
	closed  bool
	err     error // sticky write error
}

func (h *updateHolder) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return 0, h.err
	}
	if !h.closed && onlyWindowUpdates(p) && len(h.held)+len(p) <= maxHeld {
		h.held = append(h.held, p...)
		h.arm()
		return len(p), nil
	}
	if len(h.held) == 0 {
		return h.write(p)
	}
	if len(h.held)+len(p) <= maxMerged {
		h.scratch = append(append(h.scratch[:0], h.held...), p...)
		h.held = h.held[:0]
		if _, err := h.write(h.scratch); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := h.flushLocked(); err != nil {
		return 0, err
	}
	return h.write(p)
}

func (h *updateHolder) write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	if err != nil {
		h.err = err
	}
	return n, err
}

func (h *updateHolder) arm() {
	if h.armed {
		return
	}
	h.armed = true
	if h.timer == nil {
		h.timer = time.AfterFunc(updateHold, h.flush)
		return
	}
	h.timer.Reset(updateHold)
}

// flush writes the held frames (the timer's deadline).
func (h *updateHolder) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	_ = h.flushLocked()
}

func (h *updateHolder) flushLocked() error {
	if len(h.held) == 0 || h.err != nil {
		return h.err
	}
	_, err := h.write(h.held)
	h.held = h.held[:0]
	return err
}

// close drops what is held (the connection is closing) and stops the timer.
func (h *updateHolder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.held = nil
	if h.timer != nil {
		h.timer.Stop()
	}
}

// onlyWindowUpdates reports whether p is one or more whole HTTP/2 frames, all
// WINDOW_UPDATE.
func onlyWindowUpdates(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	for len(p) > 0 {
		if len(p) < 9 || p[3] != frameWindowUpdate {
			return false
		}
		n := 9 + (int(p[0])<<16 | int(p[1])<<8 | int(p[2]))
		if len(p) < n {
			return false
		}
		p = p[n:]
	}
	return true
}
