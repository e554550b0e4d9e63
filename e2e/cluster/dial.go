package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Dial connects to addr over network ("tcp", "tcp4", "udp", ...) from a
// socket created inside the namespace at netnsPath. addr must be an IP
// literal and port (name resolution would run outside the namespace).
func Dial(ctx context.Context, netnsPath, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := InNetns(netnsPath, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, netnsPath, err)
	}
	return conn, nil
}

// Listen opens a listener on addr inside the namespace at netnsPath; its
// accepted connections belong to that namespace.
func Listen(netnsPath, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(netnsPath, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s in %s: %w", addr, netnsPath, err)
	}
	return ln, nil
}

// HTTPClient returns a client whose connections are dialled inside the
// namespace at netnsPath, without keep-alive (so it holds no socket, and
// no namespace reference, between requests), with a 10 s timeout.
func HTTPClient(netnsPath string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			Proxy:             nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return Dial(ctx, netnsPath, network, addr)
			},
		},
	}
}

// HTTPGet fetches url from inside the namespace at netnsPath and returns the
// body. A status other than 200 is an error carrying the status and body.
func HTTPGet(netnsPath, url string) ([]byte, error) {
	resp, err := HTTPClient(netnsPath).Get(url)
	if err != nil {
		return nil, fmt.Errorf("http get: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("http get %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("http get %s: status %d: %s", url, resp.StatusCode, body)
	}
	return body, nil
}
