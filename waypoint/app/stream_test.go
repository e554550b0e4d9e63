package app

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// bigChunks is how many 64 KiB chunks backends answer /big with (4 MiB: many times
// the waypoint's in-memory stream buffers).
const bigChunks = 64

// TestStreams covers the downstream stream as the waypoint's HTTP server sees it
// (an in-memory connection fed by the HBONE stream): half-close, pipelining, a
// vanished client, and bodies larger than every buffer on the way, both ways.
func TestStreams(t *testing.T) {
	e := newEnv(t, testServices(testRoutes())...)
	dial := func(t *testing.T) *hbone.Conn {
		t.Helper()
		c, err := e.hbone.Dial(context.Background(), hbone.Request{Address: e.addrs["hbone"].String(),
			Authority: "10.96.0.10:9080", Identities: []spiffe.Identity{waypointID}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	const host = "Host: " + reviewsFQDN + ":9080\r\n"
	t.Run("connection close ends the stream", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, "GET /payload HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c) // the waypoint closes after the response: END_STREAM
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), string(payload)) {
			t.Fatalf("exchange: %v %q", err, b)
		}
	})
	t.Run("half-close after the request is a client gone", func(t *testing.T) {
		// As net/http's server (and Envoy's HTTP/1 codec) treat it: the request is
		// cancelled (499, DC), and the stream ends.
		c := dial(t)
		if _, err := io.WriteString(c, "GET /hold-half HTTP/1.1\r\n"+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 499") {
			t.Fatalf("exchange: %v %q", err, b)
		}
	})
	t.Run("pipelined requests in one write", func(t *testing.T) {
		c := dial(t)
		req := "GET /one HTTP/1.1\r\n" + host + "\r\nGET /two HTTP/1.1\r\n" + host + "\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for _, want := range []string{"v1 GET /one", "v1 GET /two"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || string(b) != want {
				t.Fatalf("response %d %q %v, want %q", resp.StatusCode, b, err, want)
			}
		}
	})
	t.Run("client gone mid-request", func(t *testing.T) {
		c := dial(t)
		hold := e.backends["v1"].hold("/hold-gone")
		defer close(hold)
		if _, err := io.WriteString(c, "GET /hold-gone HTTP/1.1\r\n"+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "request at the backend", func() bool { return e.backends["v1"].count("/hold-gone") == 1 })
		c.Close() // resets the stream
		waitFor(t, 10*time.Second, "access log entry with DC", func() bool {
			entry := findLogEntry(t, e.accessLog.String(), "GET", "/hold-gone")
			return entry != nil && entry["response_flags"] == "DC"
		})
	})
	t.Run("large streamed request body", func(t *testing.T) {
		body := make([]byte, 6<<20)
		_, _ = rand.Read(body)
		pr, pw := io.Pipe()
		go func() {
			for off := 0; off < len(body); off += 100 << 10 { // slow-ish chunks, no length
				if _, err := pw.Write(body[off:min(off+100<<10, len(body))]); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, reviews+"/count", pr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != fmt.Sprint(len(body)) {
			t.Fatalf("POST /count: %d %q, want %d bytes counted", resp.StatusCode, b, len(body))
		}
	})
	t.Run("large response", func(t *testing.T) {
		resp, err := e.client.Get(reviews + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || n != bigChunks<<16 {
			t.Fatalf("GET /big: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
	})
}

var _ net.Conn = (*hbone.Conn)(nil)
