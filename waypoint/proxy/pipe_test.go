package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

func TestBufPipe(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, p *bufPipe)
	}{
		{"writes queue without a reader; the reader gets them in one read", func(t *testing.T, p *bufPipe) {
			pipeWrite(t, p, "head ")
			pipeWrite(t, p, "body")
			b := make([]byte, 64)
			if n, err := p.read(b); err != nil || string(b[:n]) != "head body" {
				t.Fatalf("read %q %v", b[:n], err)
			}
		}},
		{"closeWrite: EOF after the queue", func(t *testing.T, p *bufPipe) {
			pipeWrite(t, p, "last")
			p.closeWrite(false)
			if got, err := io.ReadAll(pipeBody{p}); err != nil || string(got) != "last" {
				t.Fatalf("read %q %v", got, err)
			}
			if _, err := p.write([]byte("x")); err == nil {
				t.Fatal("write after closeWrite succeeded")
			}
		}},
		{"closeWrite(true): later writes fail with net.ErrClosed", func(t *testing.T, p *bufPipe) {
			p.closeWrite(true)
			if _, err := p.write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write: %v", err)
			}
		}},
		{"closeRead fails writes and wakes a blocked reader", func(t *testing.T, p *bufPipe) {
			done := make(chan error, 1)
			go func() {
				_, err := p.read(make([]byte, 1))
				done <- err
			}()
			p.closeRead()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked read: %v", err)
			}
			if _, err := p.write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("write: %v", err)
			}
		}},
		{"a full queue makes the writer wait; bytes arrive in order", func(t *testing.T, p *bufPipe) {
			want := make([]byte, 5*pipeLimit+123)
			for i := range want {
				want[i] = byte(i % 251)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := 0; off < len(want); off += 7000 {
					if _, err := p.write(want[off:min(off+7000, len(want))]); err != nil {
						t.Error(err)
						return
					}
				}
				p.closeWrite(false)
			}()
			got, err := io.ReadAll(pipeBody{p})
			wg.Wait()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes (%v), want %d in order", len(got), err, len(want))
			}
			if cap(p.buf) > pipeKeepCap {
				t.Fatalf("drained queue keeps %d bytes", cap(p.buf))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newBufPipe())
		})
	}
}

func pipeWrite(t *testing.T, p *bufPipe, s string) {
	t.Helper()
	if n, err := p.write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("write %q: %d %v", s, n, err)
	}
}
