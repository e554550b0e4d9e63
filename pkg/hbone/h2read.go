package hbone

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/net/http2"
)

// readLoop reads and dispatches frames until the connection fails. onRequest handles
// a server's new request HEADERS (nil on clients). DATA payloads are read straight
// into pooled buffers, bypassing the Framer's pinned read buffer.
func (c *h2conn) readLoop(onRequest func(*http2.MetaHeadersFrame) error) error {
	if !c.isClient {
		var pre [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(c.nc, pre[:]); err != nil {
			return fmt.Errorf("read preface: %w", err)
		}
		if string(pre[:]) != http2.ClientPreface {
			return fmt.Errorf("read preface: %w", http2.ConnectionError(http2.ErrCodeProtocol))
		}
	}
	for first := true; ; first = false {
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			return err
		}
		if first && fh.Type != http2.FrameSettings {
			return fmt.Errorf("first frame %v: %w", fh.Type, http2.ConnectionError(http2.ErrCodeProtocol))
		}
		if fh.Type == http2.FrameData {
			err = c.readData(fh)
		} else {
			var f http2.Frame
			f, err = c.fr.ReadFrameForHeader(fh)
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			if err == nil {
				err = c.handle(f, onRequest)
			}
		}
		if err != nil {
			return err
		}
	}
}

func (c *h2conn) handle(f http2.Frame, onRequest func(*http2.MetaHeadersFrame) error) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.MetaHeadersFrame:
		if c.isClient {
			return c.onResponse(f)
		}
		return onRequest(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.queueCtl(func(fr *http2.Framer) error { return fr.WritePing(true, f.Data) }); err != nil {
			return err
		}
		c.signal()
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.PushPromiseFrame:
		return fmt.Errorf("push promise: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	}
	return nil // PRIORITY, unknown types: ignored
}

// readData accounts a DATA frame against both receive windows and delivers it.
func (c *h2conn) readData(fh http2.FrameHeader) error {
	if fh.StreamID == 0 {
		return fmt.Errorf("data on stream 0: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	}
	n := int(fh.Length)
	var buf *[]byte
	var data []byte
	if n > 0 {
		buf = getBuf(n)
		data = (*buf)[:n]
		if _, err := io.ReadFull(c.nc, data); err != nil {
			putBuf(buf)
			return fmt.Errorf("read data: %w", err)
		}
	}
	if fh.Flags.Has(http2.FlagDataPadded) {
		if n == 0 || int(data[0]) > n-1 {
			putBuf(buf)
			return fmt.Errorf("data padding: %w", http2.ConnectionError(http2.ErrCodeProtocol))
		}
		data = data[1 : n-int(data[0])]
	}
	end := fh.Flags.Has(http2.FlagDataEndStream)
	c.mu.Lock()
	if int64(n) > c.recvAvail {
		c.mu.Unlock()
		putBuf(buf)
		return fmt.Errorf("connection window exceeded: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
	}
	c.recvAvail -= int64(n)
	s := c.streams[fh.StreamID]
	var code http2.ErrCode
	ok := false
	switch {
	case s == nil: // closed stream: dropped
	case s.recvEnd:
		code = http2.ErrCodeStreamClosed
	case int64(n) > s.recvAvail:
		code = http2.ErrCodeFlowControl
	default:
		s.recvAvail -= int64(n)
		ok = true
	}
	closeConn := false
	if ok && end {
		s.recvEnd = true
		closeConn = c.removeLocked(s)
	}
	idle := s == nil && (fh.StreamID%2 == 0 || fh.StreamID > c.highestID)
	c.mu.Unlock()
	if !ok {
		putBuf(buf)
		c.credit(nil, n, true)
		if idle {
			return fmt.Errorf("data on idle stream: %w", http2.ConnectionError(http2.ErrCodeProtocol))
		}
		if s != nil {
			s.abort(fmt.Errorf("receive: %w", resetError(code)), code, true)
		}
		return nil
	}
	if pad := n - len(data); pad > 0 {
		c.credit(s, pad, true)
	}
	s.deliver(buf, data, end)
	if closeConn {
		c.goAwayClose(http2.ErrCodeNo, errDrained)
	}
	return nil
}

func (c *h2conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return err
		}
		switch st.ID {
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(st.Val) - c.peerInitWin
			c.peerInitWin = int64(st.Val)
			for _, s := range c.streams {
				s.sendWin += delta
				if s.sendWin > maxWindow {
					c.mu.Unlock()
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.mu.Unlock()
		case http2.SettingMaxFrameSize:
			c.mu.Lock()
			c.peerMaxFrame = int(st.Val)
			c.mu.Unlock()
		case http2.SettingMaxConcurrentStreams:
			c.mu.Lock()
			c.peerMaxStreams = st.Val
			c.mu.Unlock()
		case http2.SettingHeaderTableSize:
			c.pmu.Lock()
			c.henc.SetMaxDynamicTableSizeLimit(st.Val)
			c.pmu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	c.mu.Lock()
	c.sendCond.Broadcast()
	c.mu.Unlock()
	if err := c.queueCtl(func(fr *http2.Framer) error { return fr.WriteSettingsAck() }); err != nil {
		return err
	}
	c.signal()
	return nil
}

func (c *h2conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendCond.Broadcast()
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > maxWindow {
			return fmt.Errorf("connection window overflow: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
		}
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if f.StreamID%2 == 0 || f.StreamID > c.highestID {
			return fmt.Errorf("window update on idle stream: %w", http2.ConnectionError(http2.ErrCodeProtocol))
		}
		return nil
	}
	s.sendWin += inc
	if s.sendWin > maxWindow {
		s.sendWin = maxWindow
		c.mu.Unlock()
		s.abort(resetError(http2.ErrCodeFlowControl), http2.ErrCodeFlowControl, true)
		c.mu.Lock()
	}
	return nil
}

func (c *h2conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	idle := s == nil && (f.StreamID%2 == 0 || f.StreamID > c.highestID)
	stopOnly := c.isClient && s != nil && f.ErrCode == http2.ErrCodeNo && s.recvEnd
	if stopOnly {
		// RFC 9113 §8.1: after a complete response, RST_STREAM(NO_ERROR) only asks us
		// to stop sending; what we received is still delivered.
		s.stopped, s.sentEnd = true, true
		c.removeLocked(s)
		c.sendCond.Broadcast()
	}
	c.mu.Unlock()
	switch {
	case idle:
		return fmt.Errorf("reset of idle stream: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	case stopOnly:
		s.stopSend()
	case s != nil:
		s.abort(fmt.Errorf("peer: %w", resetError(f.ErrCode)), 0, false)
	}
	return nil
}

func (c *h2conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAway = true
	var refused []*stream
	for id, s := range c.streams {
		if id > f.LastStreamID && (id%2 == 1) == c.isClient {
			refused = append(refused, s)
		}
	}
	closeNow := len(c.streams) == len(refused) && c.active == len(refused)
	c.mu.Unlock()
	for _, s := range refused {
		s.abort(fmt.Errorf("%w: goaway (%v)", errRefused, f.ErrCode), 0, false)
	}
	if closeNow {
		c.close(fmt.Errorf("peer sent goaway (%v)", f.ErrCode))
	}
}

// onResponse handles response HEADERS (and trailers) on a client connection.
func (c *h2conn) onResponse(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	idle := s == nil && (f.StreamID%2 == 0 || f.StreamID > c.highestID)
	c.mu.Unlock()
	if idle {
		return fmt.Errorf("headers on idle stream: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	}
	if s == nil {
		return nil
	}
	if !s.gotResp {
		status, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || status < 100 || status > 999 || (status < 200 && f.StreamEnded()) {
			s.abort(fmt.Errorf("response: %w: bad :status", ErrStreamReset), http2.ErrCodeProtocol, true)
			return nil
		}
		if status < 200 {
			return nil // informational
		}
		s.gotResp = true // read loop only
		s.respCh <- status
	} else if !f.StreamEnded() {
		s.abort(fmt.Errorf("response: %w: trailers without end of stream", ErrStreamReset), http2.ErrCodeProtocol, true)
		return nil
	}
	if f.StreamEnded() {
		c.endRecv(s)
	}
	return nil
}

// endRecv records the peer's END_STREAM on s and delivers the end of stream.
func (c *h2conn) endRecv(s *stream) {
	c.mu.Lock()
	if s.recvEnd {
		c.mu.Unlock()
		return
	}
	s.recvEnd = true
	closeConn := c.removeLocked(s)
	c.mu.Unlock()
	s.deliver(nil, nil, true)
	if closeConn {
		c.goAwayClose(http2.ErrCodeNo, errDrained)
	}
}

// resetStream answers a stream error with RST_STREAM.
func (c *h2conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	if !c.isClient && id%2 == 1 && id > c.highestID {
		c.highestID = id
	}
	c.mu.Unlock()
	if s != nil {
		s.abort(fmt.Errorf("receive: %w", resetError(code)), code, true)
		return
	}
	_ = c.queueCtl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	c.signal()
}
