package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Reply is the JSON body the HTTP server answers to any request.
type Reply struct {
	// Pod is the server's --name.
	Pod string `json:"pod"`
	// Peer is the remote address the server saw, "ip:port".
	Peer string `json:"peer"`
	// Path is the request path.
	Path string `json:"path"`
	// Bytes is the number of request body bytes received.
	Bytes int64 `json:"bytes"`
	// Method and Host are the request method and Host header.
	Method string `json:"method,omitempty"`
	Host   string `json:"host,omitempty"`
	// Headers are the request headers (lowercase names, first values).
	Headers map[string]string `json:"headers,omitempty"`
	// Count is CountPath's answer.
	Count int `json:"count,omitempty"`
}

// Server serves HTTP on HTTPAddr and raw TCP echo on TCPAddr (either may be
// empty to disable it), naming itself Name in every answer.
type Server struct {
	Name     string
	HTTPAddr string
	TCPAddr  string
	// Log receives accept and connection errors; nil discards them.
	Log *log.Logger
}

// shutdownGrace bounds how long Run waits for HTTP requests in flight.
const shutdownGrace = 5 * time.Second

// Run listens on the configured addresses (plain TCP, MPTCP off, like a
// typical application) and serves until ctx ends. It fails when a listener
// cannot be opened or neither address is set.
func (s *Server) Run(ctx context.Context) error {
	if s.HTTPAddr == "" && s.TCPAddr == "" {
		return errors.New("echo server: no --http or --tcp address")
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	var httpLn, tcpLn net.Listener
	var err error
	if s.HTTPAddr != "" {
		if httpLn, err = lc.Listen(ctx, "tcp", s.HTTPAddr); err != nil {
			return fmt.Errorf("echo server: listen http: %w", err)
		}
	}
	if s.TCPAddr != "" {
		if tcpLn, err = lc.Listen(ctx, "tcp", s.TCPAddr); err != nil {
			if httpLn != nil {
				httpLn.Close()
			}
			return fmt.Errorf("echo server: listen tcp: %w", err)
		}
	}
	return s.Serve(ctx, httpLn, tcpLn)
}

// Serve serves on the given listeners (nil ones are skipped) until ctx
// ends, then closes them and waits for its connections to finish.
func (s *Server) Serve(ctx context.Context, httpLn, tcpLn net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	if httpLn != nil {
		srv := &http.Server{Handler: Handler(s.Name), ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.Log}
		g.Go(func() error {
			if err := srv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("echo server: serve http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			return nil
		})
	}
	if tcpLn != nil {
		g.Go(func() error { return s.serveTCP(ctx, tcpLn) })
	}
	return g.Wait()
}

// Handler answers every request with a Reply for server name (status 200), with test
// controls in the query: delay=<duration> waits first (at most 30 s), status=<code>
// answers that code, failevery=<n> answers 503 to every n-th request the server got
// (counting all requests). CountPath reports per-path request counts, e.g. for
// checking that a mirror received copies.
func Handler(name string) http.Handler {
	var (
		mu     sync.Mutex
		served int            // requests counted for ?failevery
		paths  map[string]int // requests per path, for /_echo/count
	)
	paths = map[string]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.URL.Path == CountPath {
			mu.Lock()
			c := paths[r.URL.Query().Get("path")]
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(Reply{Pod: name, Path: r.URL.Path, Count: c})
			return
		}
		q := r.URL.Query()
		mu.Lock()
		paths[r.URL.Path]++
		served++
		nth := served
		mu.Unlock()
		code := http.StatusOK
		if every, err := strconv.Atoi(q.Get("failevery")); err == nil && every > 0 && nth%every == 0 {
			code = http.StatusServiceUnavailable
		}
		if c, err := strconv.Atoi(q.Get("status")); err == nil && c >= 200 && c <= 599 {
			code = c
		}
		if d, err := time.ParseDuration(q.Get("delay")); err == nil && d > 0 {
			t := time.NewTimer(min(d, maxDelay))
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		hdr := map[string]string{}
		for k, v := range r.Header {
			hdr[strings.ToLower(k)] = v[0]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(Reply{Pod: name, Peer: r.RemoteAddr, Path: r.URL.Path, Bytes: n, Method: r.Method, Host: r.Host, Headers: hdr})
	})
}

// CountPath answers, in Reply.Count, how many requests the server got for a path (query
// "path"); requests to it are not counted.
const CountPath = "/_echo/count"

// maxDelay caps the ?delay a request may ask for.
const maxDelay = 30 * time.Second

// Greeting is the first line the TCP server writes on every connection.
func Greeting(name, peer string) string { return fmt.Sprintf("pod=%s peer=%s\n", name, peer) }

// serveTCP accepts until ctx ends, then closes the listener and every open
// connection and waits for their handlers.
func (s *Server) serveTCP(ctx context.Context, ln net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("echo server: accept tcp: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.echo(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// echo writes the greeting, copies everything back until the client
// half-closes, then half-closes its side and closes.
func (s *Server) echo(c net.Conn) {
	defer c.Close()
	if _, err := io.WriteString(c, Greeting(s.Name, c.RemoteAddr().String())); err != nil {
		s.logf("tcp %s: write greeting: %v", c.RemoteAddr(), err)
		return
	}
	if _, err := io.Copy(c, bufio.NewReader(c)); err != nil {
		s.logf("tcp %s: echo: %v", c.RemoteAddr(), err)
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Printf(format, args...)
	}
}
