package hbone

import (
	"time"

	"golang.org/x/net/http2"
)

// maxSendPayload is the largest DATA payload to send now.
func (c *h2conn) maxSendPayload() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return min(c.peerMaxFrame, maxFrameSend)
}

// reserve waits until n > 0 bytes (at most want) may be sent on s, and takes them from
// both windows.
func (c *h2conn) reserve(s *stream, want int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case s.err != nil:
			return 0, s.err
		case s.stopped:
			return 0, errStopped
		case s.sentEnd:
			return 0, errWriteAfterEnd
		}
		n := min(int64(want), int64(c.peerMaxFrame), c.sendWin, s.sendWin)
		if n > 0 {
			c.sendWin -= n
			s.sendWin -= n
			return int(n), nil
		}
		if !s.wdeadline.IsZero() && !time.Now().Before(s.wdeadline) {
			return 0, errDeadline
		}
		c.sendCond.Wait()
	}
}

// credit returns n consumed bytes to the peer's windows (connection, and stream s if
// non-nil), sending WINDOW_UPDATE once a quarter window has accumulated. From the read
// loop it only queues; elsewhere it also writes.
func (c *h2conn) credit(s *stream, n int, fromReader bool) {
	if n <= 0 {
		return
	}
	var connInc, strInc uint32
	var id uint32
	c.mu.Lock()
	c.recvUnacked += int64(n)
	if c.recvUnacked >= connWindow/4 {
		connInc = uint32(c.recvUnacked)
		c.recvAvail += c.recvUnacked
		c.recvUnacked = 0
	}
	if s != nil && !s.recvEnd {
		s.recvUnacked += int64(n)
		if s.recvUnacked >= streamWindow/4 {
			strInc, id = uint32(s.recvUnacked), s.id
			s.recvAvail += s.recvUnacked
			s.recvUnacked = 0
		}
	}
	closed := c.closed
	c.mu.Unlock()
	if closed || (connInc == 0 && strInc == 0) {
		return
	}
	_ = c.queueCtl(func(fr *http2.Framer) error {
		if connInc > 0 {
			if err := fr.WriteWindowUpdate(0, connInc); err != nil {
				return err
			}
		}
		if strInc > 0 {
			return fr.WriteWindowUpdate(id, strInc)
		}
		return nil
	})
	if fromReader {
		c.signal()
	} else {
		_ = c.flushPending()
	}
}
