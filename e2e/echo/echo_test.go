package echo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startServer serves on loopback listeners and stops on test cleanup.
func startServer(t *testing.T) (httpAddr, tcpAddr string) {
	t.Helper()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := &Server{Name: "pod-1"}
	go func() { done <- s.Serve(ctx, httpLn, tcpLn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	return httpLn.Addr().String(), tcpLn.Addr().String()
}

func decodeLines[T any](t *testing.T, out []byte) []T {
	t.Helper()
	var res []T
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		res = append(res, v)
	}
	return res
}

func TestHTTP(t *testing.T) {
	httpAddr, _ := startServer(t)
	for _, tc := range []struct {
		name      string
		opts      HTTPOptions
		wantBytes int64
		wantHost  string
		method    string
	}{
		{name: "get", opts: HTTPOptions{URL: "http://" + httpAddr + "/hello", Count: 3}, wantHost: httpAddr, method: "GET"},
		{name: "post keepalive", opts: HTTPOptions{URL: "http://" + httpAddr + "/hello", Count: 2, Body: "MARKER-123", KeepAlive: true}, wantBytes: 10, wantHost: httpAddr, method: "POST"},
		{name: "host header", opts: HTTPOptions{URL: "http://" + httpAddr + "/hello", Header: http.Header{"Host": {"echo.demo.svc"}, "X-Test": {"1"}}}, wantHost: "echo.demo.svc", method: "GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			failures, err := RunHTTP(context.Background(), tc.opts, &out)
			if err != nil || failures != 0 {
				t.Fatalf("RunHTTP = %d, %v; output %s", failures, err, out.String())
			}
			res := decodeLines[HTTPResult](t, out.Bytes())
			if len(res) != max(tc.opts.Count, 1) {
				t.Fatalf("got %d lines, want %d", len(res), tc.opts.Count)
			}
			peers := map[string]bool{}
			for _, r := range res {
				if r.Pod != "pod-1" || r.Path != "/hello" || r.Status != 200 || r.Bytes != tc.wantBytes || r.Host != tc.wantHost || r.Method != tc.method {
					t.Errorf("result %+v", r)
				}
				if !strings.HasPrefix(r.Peer, "127.0.0.1:") {
					t.Errorf("peer %q", r.Peer)
				}
				peers[r.Peer] = true
			}
			// A new connection (new source port) per request unless keep-alive.
			if want := len(res); tc.opts.KeepAlive {
				if len(peers) != 1 {
					t.Errorf("keep-alive used %d connections", len(peers))
				}
			} else if len(peers) != want {
				t.Errorf("%d requests used %d connections", want, len(peers))
			}
		})
	}
}

func TestTCP(t *testing.T) {
	_, tcpAddr := startServer(t)
	for _, tc := range []struct {
		name    string
		payload string
		count   int
	}{
		{name: "default payload", count: 1},
		{name: "marker", payload: "MARKER-abc", count: 3},
		{name: "large", payload: strings.Repeat("x", 1<<20), count: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			failures, err := RunTCP(context.Background(), TCPOptions{Addr: tcpAddr, Count: tc.count, Payload: tc.payload}, &out)
			if err != nil || failures != 0 {
				t.Fatalf("RunTCP = %d, %v; output %.300s", failures, err, out.String())
			}
			res := decodeLines[TCPResult](t, out.Bytes())
			want := len(tc.payload)
			if want == 0 {
				want = len("ambit-echo")
			}
			if len(res) != tc.count {
				t.Fatalf("got %d lines, want %d", len(res), tc.count)
			}
			for _, r := range res {
				if !r.OK || r.Pod != "pod-1" || r.Bytes != want || !strings.HasPrefix(r.Peer, "127.0.0.1:") {
					t.Errorf("result %+v", r)
				}
			}
		})
	}
}

func TestClientFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	var out bytes.Buffer
	if n, err := RunTCP(context.Background(), TCPOptions{Addr: closed, Count: 2}, &out); err != nil || n != 2 {
		t.Fatalf("RunTCP to closed port = %d, %v", n, err)
	}
	for _, r := range decodeLines[TCPResult](t, out.Bytes()) {
		if r.OK || r.Error == "" {
			t.Errorf("result %+v", r)
		}
	}
	out.Reset()
	if n, err := RunHTTP(context.Background(), HTTPOptions{URL: "http://" + closed + "/"}, &out); err != nil || n != 1 {
		t.Fatalf("RunHTTP to closed port = %d, %v", n, err)
	}
	if _, err := RunTCP(context.Background(), TCPOptions{}, &out); err == nil {
		t.Error("RunTCP without address succeeded")
	}
	if _, err := RunHTTP(context.Background(), HTTPOptions{}, &out); err == nil {
		t.Error("RunHTTP without URL succeeded")
	}
}

// TestTCPNotEchoServer checks that a peer that does not echo is reported, not trusted.
func TestTCPNotEchoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("pod=fake peer=1.2.3.4:5\n"))
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte("something else"))
	}()
	var out bytes.Buffer
	if n, err := RunTCP(context.Background(), TCPOptions{Addr: ln.Addr().String(), Payload: "abc"}, &out); err != nil || n != 1 {
		t.Fatalf("RunTCP = %d, %v", n, err)
	}
	r := decodeLines[TCPResult](t, out.Bytes())[0]
	if r.OK || !strings.Contains(r.Error, "mismatch") || r.Pod != "fake" {
		t.Fatalf("result %+v", r)
	}
}

func TestServerRunNeedsAddress(t *testing.T) {
	if err := (&Server{Name: "x"}).Run(context.Background()); err == nil {
		t.Fatal("Run without addresses succeeded")
	}
}

func TestParseGreeting(t *testing.T) {
	for _, tc := range []struct {
		line, pod, peer string
		wantErr         bool
	}{
		{line: "pod=a peer=10.20.1.2:4000\n", pod: "a", peer: "10.20.1.2:4000"},
		{line: Greeting("echo-1", "[::1]:80"), pod: "echo-1", peer: "[::1]:80"},
		{line: "pod=a peer=10.20.1.2:4000", wantErr: true},
		{line: "pod= peer=1.2.3.4:5\n", wantErr: true},
		{line: "pod=a peer=nope\n", wantErr: true},
		{line: "hello\n", wantErr: true},
		{line: "pod=a peer=1.2.3.4:5 extra\n", wantErr: true},
		{line: "", wantErr: true},
	} {
		t.Run(tc.line, func(t *testing.T) {
			pod, peer, err := ParseGreeting(tc.line)
			if (err != nil) != tc.wantErr || pod != tc.pod || peer != tc.peer {
				t.Fatalf("ParseGreeting(%q) = %q, %q, %v", tc.line, pod, peer, err)
			}
		})
	}
}

func FuzzParseGreeting(f *testing.F) {
	f.Add("pod=a peer=10.20.1.2:4000\n")
	f.Add("pod=x peer=[::1]:1\n")
	f.Fuzz(func(t *testing.T, line string) {
		pod, peer, err := ParseGreeting(line)
		if err != nil {
			return
		}
		if got := Greeting(pod, peer); got != "pod="+pod+" peer="+peer+"\n" || pod == "" {
			t.Fatalf("accepted %q as %q %q", line, pod, peer)
		}
	})
}

func TestTCPHold(t *testing.T) {
	_, tcpAddr := startServer(t)
	var out bytes.Buffer
	failures, err := RunTCP(context.Background(), TCPOptions{Addr: tcpAddr, Payload: "held", Hold: 350 * time.Millisecond}, &out)
	if err != nil || failures != 0 {
		t.Fatalf("RunTCP = %d, %v; output %s", failures, err, out.String())
	}
	res := decodeLines[TCPResult](t, out.Bytes())
	if len(res) != 2 || !res[0].Holding || !res[1].OK || res[1].Holding || res[1].Bytes < 3*len("held") {
		t.Fatalf("results %+v", res)
	}
}
