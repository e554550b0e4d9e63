package zds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"istio.io/istio/pkg/zdsapi"
)

// Handler is ztunnel's side of the hand-off. Calls come from one goroutine, in order.
type Handler interface {
	// AddWorkload starts (or refreshes: the same uid may be added again, e.g. in a
	// replayed snapshot) proxying for a pod. netns is the pod's network namespace;
	// sockmap is its redirection SOCKMAP or nil. The handler owns both files and closes
	// them when done. A returned error is sent to the agent in the Ack.
	AddWorkload(uid string, info *zdsapi.WorkloadInfo, netns *os.File, sockmap *os.File) error
	// DelWorkload stops proxying for a pod. Unknown uids must not be an error.
	DelWorkload(uid string) error
	// Reconcile ends a snapshot: every workload whose uid is not in keep must be removed.
	Reconcile(keep map[string]bool) error
}

// Client is ztunnel's side of ZDS: it connects to the node agent's socket, says hello,
// and applies each request through Handler, acknowledging it with the handler's error.
// When the agent goes away it reconnects with exponential backoff.
type Client struct {
	// Path is the agent's socket (see wire.ZDSSocketPath).
	Path string
	// Handler applies requests. Required.
	Handler Handler
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay; 0 means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
}

// Run connects and serves the agent until ctx ends, reconnecting whenever the
// connection fails. It returns nil when ctx ends; configuration errors are returned at
// once.
func (c *Client) Run(ctx context.Context) error {
	if c.Handler == nil || c.Path == "" {
		return errors.New("zds client: path and handler are required")
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(5*time.Second, minB)
	}
	backoff := minB
	for {
		connected, err := c.session(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = minB
			log.Info("zds: connection to node agent ended; reconnecting", "err", err)
		} else {
			log.Debug("zds: node agent not reachable", "err", err, "retry", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
}

// clientState tracks the snapshot in progress on one connection.
type clientState struct {
	inSnapshot bool
	seen       map[string]bool
}

// session dials, says hello and serves requests until the connection ends. connected
// reports whether the hello went through.
func (c *Client) session(ctx context.Context, log *slog.Logger) (connected bool, err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", c.Path)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := sendMsg(conn, &zdsapi.ZdsHello{Version: zdsapi.Version_V1}); err != nil {
		return false, fmt.Errorf("send hello: %w", err)
	}
	log.Info("zds: connected to node agent", "path", c.Path)
	st := &clientState{inSnapshot: true, seen: map[string]bool{}}
	for {
		p, err := recvMsg(conn, time.Time{})
		var ackErr error
		switch {
		case errors.Is(err, ErrMalformed):
			ackErr = err // the packet boundary survives; report and go on
		case err != nil:
			return true, err
		default:
			ackErr = c.handle(st, p)
		}
		ack := &zdsapi.Ack{}
		if ackErr != nil {
			log.Warn("zds: request failed", "err", ackErr)
			ack.Error = truncate(ackErr.Error(), maxAckError)
		}
		resp := &zdsapi.WorkloadResponse{Payload: &zdsapi.WorkloadResponse_Ack{Ack: ack}}
		if err := sendMsg(conn, resp); err != nil {
			return true, fmt.Errorf("send ack: %w", err)
		}
	}
}

// handle decodes and applies one request. Files in p go to the handler on Add and are
// closed otherwise.
func (c *Client) handle(st *clientState, p *packet) error {
	req, err := decodeRequest(p.data, len(p.files))
	if err != nil {
		p.closeFiles()
		return err
	}
	switch pl := req.GetPayload().(type) {
	case *zdsapi.WorkloadRequest_Add:
		uid := pl.Add.GetUid()
		if st.inSnapshot {
			st.seen[uid] = true
		}
		netns := p.files[0]
		var sockmap *os.File
		if len(p.files) > 1 {
			sockmap = p.files[1]
		}
		p.files = nil
		return c.Handler.AddWorkload(uid, pl.Add.GetWorkloadInfo(), netns, sockmap)
	case *zdsapi.WorkloadRequest_Keep:
		if !st.inSnapshot {
			return fmt.Errorf("%w: keep %s after snapshot", ErrMalformed, pl.Keep.GetUid())
		}
		st.seen[pl.Keep.GetUid()] = true
		return nil
	case *zdsapi.WorkloadRequest_Del:
		delete(st.seen, pl.Del.GetUid())
		return c.Handler.DelWorkload(pl.Del.GetUid())
	default: // SnapshotSent (decodeRequest admits nothing else)
		keep := st.seen
		st.inSnapshot, st.seen = false, map[string]bool{}
		return c.Handler.Reconcile(keep)
	}
}

// truncate bounds s to n bytes and keeps it valid UTF-8 (protobuf strings must be).
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}
