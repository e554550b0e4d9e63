package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServerAndClients runs the real command line: a server on loopback and
// both clients against it.
func TestServerAndClients(t *testing.T) {
	httpAddr, tcpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serverErr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"server", "--name", "echo-a", "--http", httpAddr, "--tcp", tcpAddr}, &bytes.Buffer{}, &serverErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("server exit %d: %s", code, serverErr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	waitListening(t, tcpAddr)
	waitListening(t, httpAddr)

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"tcp", "--addr", tcpAddr, "--payload", "MARK", "--count", "2"}, &out, &errb); code != 0 {
		t.Fatalf("tcp exit %d: %s %s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("tcp printed %q", out.String())
	}
	var tr struct {
		Pod   string `json:"pod"`
		OK    bool   `json:"ok"`
		Bytes int    `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &tr); err != nil || !tr.OK || tr.Pod != "echo-a" || tr.Bytes != 4 {
		t.Fatalf("tcp line %q: %+v %v", lines[0], tr, err)
	}

	out.Reset()
	if code := run(context.Background(), []string{"http", "--url", "http://" + httpAddr + "/p", "--header", "X-A: b", "--body", "MARK"}, &out, &errb); code != 0 {
		t.Fatalf("http exit %d: %s %s", code, out.String(), errb.String())
	}
	var hr struct {
		Pod    string `json:"pod"`
		Path   string `json:"path"`
		Status int    `json:"status"`
		Bytes  int    `json:"bytes"`
	}
	if err := json.Unmarshal(out.Bytes(), &hr); err != nil || hr.Pod != "echo-a" || hr.Path != "/p" || hr.Status != 200 || hr.Bytes != 4 {
		t.Fatalf("http output %q: %+v %v", out.String(), hr, err)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no args", nil, 2},
		{"help", []string{"--help"}, 0},
		{"unknown", []string{"bogus"}, 2},
		{"bad flag", []string{"tcp", "--nope"}, 2},
		{"extra args", []string{"tcp", "--addr", "127.0.0.1:1", "x"}, 2},
		{"server without name", []string{"server"}, 2},
		{"bad header", []string{"http", "--url", "http://x", "--header", "nocolon"}, 2},
		{"tcp without addr", []string{"tcp"}, 2},
		{"failed exchange", []string{"tcp", "--addr", "127.0.0.1:1", "--timeout", "2s"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errb.String())
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}
