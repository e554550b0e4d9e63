package proxy

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// recWriter records each Write.
type recWriter struct {
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (w *recWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *recWriter) get() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.writes...)
}

// frames renders HTTP/2 frames with x/net's Framer: "w" a WINDOW_UPDATE, "d" a DATA
// frame of n bytes, "p" a PING.
func frames(t *testing.T, spec string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for _, c := range spec {
		var err error
		switch c {
		case 'w':
			err = fr.WriteWindowUpdate(1, 4096)
		case 'd':
			err = fr.WriteData(1, false, make([]byte, n))
		case 'p':
			err = fr.WritePing(false, [8]byte{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestOnlyWindowUpdates(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"empty", nil, false},
		{"one update", frames(t, "w", 0), true},
		{"conn and stream updates", frames(t, "ww", 0), true},
		{"update then data", frames(t, "wd", 10), false},
		{"data", frames(t, "d", 10), false},
		{"ping", frames(t, "p", 0), false},
		{"truncated update", frames(t, "w", 0)[:12], false},
		{"short header", []byte{0, 0, 4, 8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := onlyWindowUpdates(tc.p); got != tc.want {
				t.Fatalf("onlyWindowUpdates = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpdateHolder(t *testing.T) {
	wu, data := frames(t, "ww", 0), frames(t, "d", 100)
	big := frames(t, "d", maxMerged)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *updateHolder, w *recWriter)
	}{
		{"updates ride in front of the next write", func(t *testing.T, h *updateHolder, w *recWriter) {
			mustHolderWrite(t, h, wu)
			if got := w.get(); len(got) != 0 {
				t.Fatalf("updates written at once: %d writes", len(got))
			}
			mustHolderWrite(t, h, data)
			got := w.get()
			if len(got) != 1 || !bytes.Equal(got[0], append(bytes.Clone(wu), data...)) {
				t.Fatalf("writes %d, want one with the updates in front", len(got))
			}
		}},
		{"updates go out alone after the hold", func(t *testing.T, h *updateHolder, w *recWriter) {
			mustHolderWrite(t, h, wu)
			deadline := time.Now().Add(10 * time.Second)
			for len(w.get()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("held updates never written")
				}
				time.Sleep(time.Millisecond)
			}
			if got := w.get(); len(got) != 1 || !bytes.Equal(got[0], wu) {
				t.Fatalf("got %d writes", len(got))
			}
		}},
		{"a large write follows the updates separately", func(t *testing.T, h *updateHolder, w *recWriter) {
			mustHolderWrite(t, h, wu)
			mustHolderWrite(t, h, big)
			got := w.get()
			if len(got) != 2 || !bytes.Equal(got[0], wu) || !bytes.Equal(got[1], big) {
				t.Fatalf("got %d writes", len(got))
			}
		}},
		{"other frames pass through", func(t *testing.T, h *updateHolder, w *recWriter) {
			mustHolderWrite(t, h, data)
			if got := w.get(); len(got) != 1 || !bytes.Equal(got[0], data) {
				t.Fatalf("got %d writes", len(got))
			}
		}},
		{"close drops held updates and stops the timer", func(t *testing.T, h *updateHolder, w *recWriter) {
			mustHolderWrite(t, h, wu)
			h.close()
			h.flush() // as a timer that fired anyway
			if got := w.get(); len(got) != 0 {
				t.Fatalf("got %d writes after close", len(got))
			}
		}},
		{"write errors are sticky", func(t *testing.T, h *updateHolder, w *recWriter) {
			w.err = errors.New("broken")
			if _, err := h.Write(data); err == nil {
				t.Fatal("no error")
			}
			w.err = nil
			if _, err := h.Write(data); err == nil {
				t.Fatal("error not sticky")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &recWriter{}
			h := &updateHolder{w: w}
			t.Cleanup(h.close)
			tc.run(t, h, w)
		})
	}
}

func mustHolderWrite(t *testing.T, h *updateHolder, p []byte) {
	t.Helper()
	if n, err := h.Write(p); n != len(p) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
}
