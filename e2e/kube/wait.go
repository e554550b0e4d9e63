package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// pollInterval is how often readiness probes are repeated.
const pollInterval = 100 * time.Millisecond

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago (the kernel picks
// it; another process may take it before the caller binds, which the caller then
// reports as a start failure).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url with client until it answers 200, p exits, or ctx ends. The error
// names what was awaited and carries the last answer or the process's log tail.
func waitHTTP(ctx context.Context, client *http.Client, url string, p *process) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last string
	for {
		if err := p.exited(); err != nil {
			return err
		}
		ok, msg := probe(ctx, client, url)
		if ok {
			return nil
		}
		last = msg
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s %s: %w (last: %s)", p.name, url, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// probe does one GET of url and reports whether it answered 200, and otherwise why not.
func probe(ctx context.Context, client *http.Client, url string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("%s: %s", resp.Status, body)
	}
	return true, ""
}
