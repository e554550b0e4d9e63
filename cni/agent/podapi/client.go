package podapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ErrUnreachable marks a failure to reach the agent at all (no socket, refused); the
// plugin's failOpen option applies only to it.
var ErrUnreachable = errors.New("node agent unreachable")

// StatusError is a non-200 answer from the agent.
type StatusError struct {
	Code int    // HTTP status
	Msg  string // ErrorResponse.Error, or the raw body
}

func (e *StatusError) Error() string { return fmt.Sprintf("node agent: %d: %s", e.Code, e.Msg) }

// Client posts pod events to the agent's Unix socket.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the agent listening on socket; timeout bounds each
// request (0 means 60s).
func NewClient(socket string, timeout time.Duration) *Client {
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: timeout}}
}

// Add posts an AddRequest and returns nil on 200, a *StatusError for other answers, or
// an error wrapping ErrUnreachable when the agent cannot be reached.
func (c *Client) Add(ctx context.Context, r AddRequest) error { return c.post(ctx, PathAdd, r) }

// Del posts a DelRequest; errors as Add.
func (c *Client) Del(ctx context.Context, r DelRequest) error { return c.post(ctx, PathDel, r) }

func (c *Client) post(ctx context.Context, path string, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://ambit-cni-agent"+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("post %s: %w: %v", path, ErrUnreachable, err)
		}
		return fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var er ErrorResponse
	msg := string(bytes.TrimSpace(raw))
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	return &StatusError{Code: resp.StatusCode, Msg: msg}
}
