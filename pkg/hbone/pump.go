package hbone

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// Stats counts one stream's payload bytes.
type Stats struct {
	Sent     int64 // application → tunnel
	Received int64 // tunnel → application
}

// pump carries bytes both ways between the stream and app until both directions
// finished: the calling goroutine reads app and sends DATA; received DATA is written to
// app by the connection's read loop (and the stream's writer when app is slow).
func (s *stream) pump(app net.Conn) (Stats, error) {
	s.attach(app)
	sent, serr := s.sendFrom(app)
	if serr != nil {
		s.abort(serr, http2.ErrCodeCancel, true)
	}
	<-s.recvDone
	s.writerWG.Wait()
	st := Stats{Sent: sent, Received: s.received.Load()}
	if err := s.failed(); err != nil {
		return st, err
	}
	return st, serr
}

// attach makes app the sink of received data.
func (s *stream) attach(app net.Conn) {
	s.rmu.Lock()
	s.sink = app
	if rc := rawConnOf(app); rc != nil {
		s.sinkNB = newNBWriter(rc)
	}
	s.dispatchLocked()
	aborted := s.rerr != nil
	s.rmu.Unlock()
	if aborted {
		_ = app.SetReadDeadline(time.Unix(1, 0))
	}
}

// sendFrom reads app into DATA frames until EOF, then sends END_STREAM.
func (s *stream) sendFrom(app net.Conn) (int64, error) {
	r := newAppReader(app)
	var sent int64
	for {
		buf, n, err := r.read(s.c.maxSendPayload())
		if n > 0 {
			werr := s.sendData((*buf)[:frameHeaderLen+n])
			putBuf(buf)
			if errors.Is(werr, errStopped) {
				return sent, nil
			}
			if werr != nil {
				return sent, werr
			}
			sent += int64(n)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return sent, s.closeSend()
		default:
			s.c.mu.Lock()
			ferr, stopped := s.err, s.stopped
			s.c.mu.Unlock()
			if ferr != nil || stopped {
				return sent, ferr
			}
			return sent, fmt.Errorf("read from application: %w", err)
		}
	}
}
