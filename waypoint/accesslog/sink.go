package accesslog

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultFlushInterval is how often a Sink writes its buffer out: Envoy's
// access_log_flush_interval default (1 s).
const DefaultFlushInterval = time.Second

const (
	// flushSize wakes the flusher before its interval, as Envoy's file access log
	// flushes once 64 KiB are pending.
	flushSize = 64 << 10
	// maxPendingDefault bounds the bytes a Sink holds while its writer is stuck;
	// lines beyond it are dropped (and counted), never waited for.
	maxPendingDefault = 16 << 20
	// keepCap is the largest buffer kept for reuse after a flush.
	keepCap = 4 * flushSize
)

// Sink buffers access log lines in memory and writes them to an underlying writer
// (stdout in the waypoint) from its own goroutine: every flush interval, as soon as
// 64 KiB are pending, and once more when Run ends, as Envoy's access log flush
// thread. Requests only append to memory under a short lock: a slow or stuck writer
// never blocks them (past 16 MiB pending, lines are dropped and counted by Dropped).
// After Run returned, Write writes through synchronously, so nothing logged late is
// lost. Safe for concurrent use; build with NewSink.
type Sink struct {
	w          io.Writer
	interval   time.Duration
	maxPending int
	wake       chan struct{}
	dropped    atomic.Uint64

	wmu   sync.Mutex // serializes writes to w; taken before mu
	spare []byte     // guarded by wmu: the buffer not in use

	mu     sync.Mutex
	buf    []byte
	closed bool
}

// NewSink returns a Sink writing to w every interval (DefaultFlushInterval when not
// positive). It starts nothing: run it with Run.
func NewSink(w io.Writer, interval time.Duration) *Sink {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	return &Sink{w: w, interval: interval, maxPending: maxPendingDefault, wake: make(chan struct{}, 1)}
}

// Write appends p, which should hold whole lines, and returns len(p) and nil; a
// line that does not fit under the pending limit is dropped. After Run returned it
// writes p to the underlying writer and returns its result.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return s.w.Write(p)
	}
	if len(s.buf)+len(p) > s.maxPending {
		s.mu.Unlock()
		s.dropped.Add(1)
		return len(p), nil
	}
	s.buf = append(s.buf, p...)
	full := len(s.buf) >= flushSize
	s.mu.Unlock()
	if full {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Flush writes the pending lines out now and returns the writer's error.
func (s *Sink) Flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.flushLocked(false)
}

// flushLocked swaps the buffers and writes the pending one outside mu, so requests
// keep appending meanwhile. close makes later Writes go straight through. wmu must be
// held.
func (s *Sink) flushLocked(close bool) error {
	s.mu.Lock()
	b := s.buf
	s.buf = s.spare[:0]
	s.closed = s.closed || close
	s.mu.Unlock()
	var err error
	if len(b) > 0 {
		_, err = s.w.Write(b)
	}
	if cap(b) <= keepCap {
		s.spare = b[:0]
	} else {
		s.spare = nil
	}
	return err
}

// Run flushes every interval, and early when 64 KiB are pending, until ctx ends;
// then it flushes what is left and returns nil. Write errors are dropped, as Envoy
// drops lines it cannot write. Call it once.
func (s *Sink) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.wmu.Lock()
			_ = s.flushLocked(true)
			s.wmu.Unlock()
			return nil
		case <-t.C:
		case <-s.wake:
		}
		_ = s.Flush()
	}
}

// Dropped counts lines dropped because the pending limit was reached.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }
