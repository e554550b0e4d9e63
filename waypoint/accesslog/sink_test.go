package accesslog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runSink runs s until the returned stop is called; stop waits for Run.
func runSink(t *testing.T, s *Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSinkComplete logs from many goroutines through a Logger into a file and
// reads the file after Run ended: every line is there, whole.
func TestSinkComplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{
		{"final flush only", time.Hour},
		{"ticking", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			s := NewSink(f, tc.interval)
			l, err := Compile(istioLogs(t), s)
			if err != nil {
				t.Fatal(err)
			}
			stop := runSink(t, s)
			const writers, each = 8, 2000
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						l.Log(&Entry{Method: "GET", Path: fmt.Sprintf("/%d/%d", g, i), ResponseCode: 200})
					}
				}()
			}
			wg.Wait()
			stop()
			seen := map[string]bool{}
			rf, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			sc := bufio.NewScanner(rf)
			for sc.Scan() {
				seen[decode(t, sc.Bytes())["path"].(string)] = true
			}
			if len(seen) != writers*each || s.Dropped() != 0 {
				t.Fatalf("%d distinct lines, %d dropped, want %d and 0", len(seen), s.Dropped(), writers*each)
			}
		})
	}
}

// TestSinkFlushInterval: a line reaches the writer within the interval, without
// any further traffic.
func TestSinkFlushInterval(t *testing.T) {
	var out syncBuffer
	s := NewSink(&out, 10*time.Millisecond)
	runSink(t, s)
	_, _ = s.Write([]byte("one\n"))
	if out.String() != "" {
		t.Fatalf("written through before a flush: %q", out.String())
	}
	waitUntil(t, "flush", func() bool { return out.String() == "one\n" })
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	syncBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return w.syncBuffer.Write(p)
}

// TestSinkStuckWriter: while the writer is stuck, Write neither blocks nor grows
// memory past the limit; lines over it are dropped and counted, the rest arrive.
func TestSinkStuckWriter(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := NewSink(w, time.Millisecond)
	s.maxPending = 1000
	stop := runSink(t, s)
	line := []byte(strings.Repeat("x", 99) + "\n")
	_, _ = s.Write(line)
	<-w.entered // the flusher holds the first line and is stuck
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			_, _ = s.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stuck writer")
	}
	if got := s.Dropped(); got != 40 {
		t.Errorf("dropped %d, want 40 (10 lines fit in 1000 bytes)", got)
	}
	close(w.release)
	stop()
	if got := strings.Count(w.String(), "\n"); got != 11 {
		t.Errorf("%d lines written, want 11", got)
	}
}

// TestSinkAfterRun: once Run returned, writes go straight to the writer.
func TestSinkAfterRun(t *testing.T) {
	var out syncBuffer
	s := NewSink(&out, time.Hour)
	stop := runSink(t, s)
	_, _ = s.Write([]byte("before\n"))
	stop()
	if _, err := s.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if out.String() != "before\nafter\n" {
		t.Fatalf("got %q", out.String())
	}
}
