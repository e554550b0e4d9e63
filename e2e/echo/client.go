package echo

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTPResult is one line the HTTP client prints: the server's Reply plus the
// response status (0 when no response) and the error, if any.
type HTTPResult struct {
	Reply
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// HTTPOptions configures RunHTTP.
type HTTPOptions struct {
	URL   string
	Count int // requests to send; < 1 means 1
	// Body, when set, is sent as the body of a POST (a GET is sent otherwise).
	Body string
	// KeepAlive reuses connections; by default each request opens a new one.
	KeepAlive bool
	// Timeout bounds each request; 0 means 5 s.
	Timeout time.Duration
	// Header is added to every request ("Host" sets the request host).
	Header http.Header
}

// RunHTTP sends opts.Count requests and writes one JSON HTTPResult line per
// request to out. It returns the number of failed requests (transport
// errors and statuses outside 2xx) and an error only when out fails or the
// options are invalid.
func RunHTTP(ctx context.Context, opts HTTPOptions, out io.Writer) (failures int, err error) {
	if opts.URL == "" {
		return 0, errors.New("http client: --url is required")
	}
	timeout := cmp.Or(opts.Timeout, 5*time.Second)
	tr := &http.Transport{DisableKeepAlives: !opts.KeepAlive, Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	enc := json.NewEncoder(out)
	for range max(opts.Count, 1) {
		res := doHTTP(ctx, client, opts)
		if res.Error != "" || res.Status < 200 || res.Status > 299 {
			failures++
		}
		if err := enc.Encode(res); err != nil {
			return failures, fmt.Errorf("http client: write result: %w", err)
		}
	}
	return failures, nil
}

func doHTTP(ctx context.Context, client *http.Client, opts HTTPOptions) HTTPResult {
	method, body := http.MethodGet, io.Reader(nil)
	if opts.Body != "" {
		method, body = http.MethodPost, strings.NewReader(opts.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, opts.URL, body)
	if err != nil {
		return HTTPResult{Error: err.Error()}
	}
	for k, vs := range opts.Header {
		for _, v := range vs {
			if http.CanonicalHeaderKey(k) == "Host" {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return HTTPResult{Error: err.Error()}
	}
	defer resp.Body.Close()
	res := HTTPResult{Status: resp.StatusCode}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		res.Error = "read body: " + err.Error()
		return res
	}
	if err := json.Unmarshal(data, &res.Reply); err != nil && resp.StatusCode/100 == 2 {
		res.Error = fmt.Sprintf("decode body %q: %v", truncate(data, 200), err)
	}
	return res
}

// TCPResult is one line the TCP client prints.
type TCPResult struct {
	// Pod and Peer come from the server's greeting line.
	Pod  string `json:"pod"`
	Peer string `json:"peer"`
	// OK is true when the echo equals the payload sent.
	OK bool `json:"ok"`
	// Bytes is the number of echoed bytes received.
	Bytes int    `json:"bytes"`
	Error string `json:"error,omitempty"`
	// Holding marks the line a held connection prints once it is established
	// (TCPOptions.Hold); its final line follows when it ends.
	Holding bool `json:"holding,omitempty"`
}

// TCPOptions configures RunTCP.
type TCPOptions struct {
	Addr    string
	Count   int    // connections to make; < 1 means 1
	Payload string // sent after the greeting; "" means "ambit-echo"
	Timeout time.Duration
	// Hold, when positive, keeps each connection open that long instead of one
	// exchange: the payload is sent and its echo checked every 100 ms, so a connection
	// closed by the network (e.g. a policy) shows as an error naming when it broke.
	Hold time.Duration
}

// RunTCP makes opts.Count connections; on each it reads the greeting, sends
// the payload, half-closes, reads the echo until EOF and compares. It writes
// one JSON TCPResult line per connection to out and returns the number of
// failed exchanges, and an error only when out fails or options are invalid.
func RunTCP(ctx context.Context, opts TCPOptions, out io.Writer) (failures int, err error) {
	if opts.Addr == "" {
		return 0, errors.New("tcp client: --addr is required")
	}
	enc := json.NewEncoder(out)
	for range max(opts.Count, 1) {
		var res TCPResult
		if opts.Hold > 0 {
			res = holdTCP(ctx, opts, enc)
		} else {
			res = doTCP(ctx, opts)
		}
		if !res.OK {
			failures++
		}
		if err := enc.Encode(res); err != nil {
			return failures, fmt.Errorf("tcp client: write result: %w", err)
		}
	}
	return failures, nil
}

func doTCP(ctx context.Context, opts TCPOptions) TCPResult {
	payload := cmp.Or(opts.Payload, "ambit-echo")
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.Timeout, 5*time.Second))
	defer cancel()
	c, r, res := openTCP(ctx, opts.Addr)
	if c == nil {
		return res
	}
	defer c.Close()
	if _, err := io.WriteString(c, payload); err != nil {
		res.Error = "write payload: " + err.Error()
		return res
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		res.Error = "half-close: " + err.Error()
		return res
	}
	echoed, err := io.ReadAll(io.LimitReader(r, int64(len(payload))+1<<20))
	res.Bytes = len(echoed)
	switch {
	case err != nil:
		res.Error = "read echo: " + err.Error()
	case string(echoed) != payload:
		res.Error = fmt.Sprintf("echo mismatch: got %d bytes %q", len(echoed), truncate(echoed, 64))
	default:
		res.OK = true
	}
	return res
}

// openTCP dials addr and reads the server's greeting; the connection's deadline
// follows ctx. On failure the connection is nil and the result carries the error.
func openTCP(ctx context.Context, addr string) (net.Conn, *bufio.Reader, TCPResult) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, TCPResult{Error: err.Error()}
	}
	context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, nil, TCPResult{Error: "read greeting: " + err.Error()}
	}
	var res TCPResult
	if res.Pod, res.Peer, err = ParseGreeting(line); err != nil {
		c.Close()
		return nil, nil, TCPResult{Error: err.Error()}
	}
	return c, r, res
}

// holdTCP keeps one connection open for opts.Hold, exchanging the payload every 100 ms;
// it prints a Holding line once the greeting arrived.
func holdTCP(ctx context.Context, opts TCPOptions, enc *json.Encoder) TCPResult {
	payload := cmp.Or(opts.Payload, "ambit-echo")
	ctx, cancel := context.WithTimeout(ctx, opts.Hold+cmp.Or(opts.Timeout, 5*time.Second))
	defer cancel()
	c, r, res := openTCP(ctx, opts.Addr)
	if c == nil {
		return res
	}
	defer c.Close()
	_ = enc.Encode(TCPResult{Pod: res.Pod, Peer: res.Peer, OK: true, Holding: true})
	start := time.Now()
	buf := make([]byte, len(payload))
	for time.Since(start) < opts.Hold {
		if _, err := io.WriteString(c, payload); err != nil {
			res.Error = fmt.Sprintf("write after %v: %v", time.Since(start).Round(time.Millisecond), err)
			return res
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			res.Error = fmt.Sprintf("read after %v: %v", time.Since(start).Round(time.Millisecond), err)
			return res
		}
		res.Bytes += len(buf)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.OK = true
	return res
}

// ParseGreeting parses the server's first line "pod=<name> peer=<ip:port>\n".
func ParseGreeting(line string) (pod, peer string, err error) {
	fields := strings.Fields(line)
	if len(fields) != 2 || !strings.HasPrefix(fields[0], "pod=") || !strings.HasPrefix(fields[1], "peer=") || !strings.HasSuffix(line, "\n") {
		return "", "", fmt.Errorf("bad greeting %q", truncate([]byte(line), 100))
	}
	pod, peer = strings.TrimPrefix(fields[0], "pod="), strings.TrimPrefix(fields[1], "peer=")
	if pod == "" {
		return "", "", fmt.Errorf("bad greeting %q: empty pod", line)
	}
	if _, _, err := net.SplitHostPort(peer); err != nil {
		return "", "", fmt.Errorf("bad greeting %q: %w", line, err)
	}
	return pod, peer, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
