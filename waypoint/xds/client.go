// Package xds is the waypoint's delta xDS client: one DeltaAggregatedResources stream
// (Envoy's ADS, go-control-plane v3 types) to istiod-lite, subscribed as Envoy
// subscribes: wildcard to listeners and clusters, by name to the route configurations,
// cluster load assignments and secrets the current state refers to. Each response is
// applied to a copy of the accepted state and handed to a Handler; the client ACKs when
// the Handler accepts and NACKs (error_detail with the Handler's message) when it
// rejects, keeping the previous state. The bearer token is re-read from a file on every
// connect and sent as "authorization: Bearer <token>" with "clusterid", as for the CA
// (wire.md). Stream failures are retried with exponential backoff.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/waypoint/config"
)

// Backoff bounds: the first retry waits DefaultBackoff, doubling per failure in a row up
// to MaxBackoff; a stream that delivered a response resets it.
const (
	DefaultBackoff = 500 * time.Millisecond
	MaxBackoff     = 30 * time.Second
)

// Handler receives the complete candidate state after each response.
type Handler interface {
	// Apply is called from Run's goroutine with the accepted state plus one response's
	// changes. nil ACKs (the client keeps res as its state); an error NACKs with its
	// message and the client keeps its previous state.
	Apply(res *config.Resources) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(res *config.Resources) error

// Apply calls f.
func (f HandlerFunc) Apply(res *config.Resources) error { return f(res) }

// Config configures a Client.
type Config struct {
	// Conn is the control-plane connection (see Dial), closed by the caller.
	Conn grpc.ClientConnInterface
	// Node identifies the waypoint (see NodeFor).
	Node *corev3.Node
	// TokenFile holds the bearer token, re-read on each connect; "" sends none.
	TokenFile string
	// ClusterID is sent as "clusterid" metadata ("" means wire.DefaultClusterID).
	ClusterID string
	// Handler validates and applies states. Required.
	Handler Handler
	// Backoff is the first reconnect delay (default DefaultBackoff).
	Backoff time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Client is the waypoint's ADS client. Build with New, run with Run.
type Client struct {
	cfg      Config
	res      *config.Resources
	versions map[string]map[string]string // type URL -> name -> version
}

// Types are the resource types the waypoint subscribes to, in subscription order.
var Types = []string{resourcev3.ListenerType, resourcev3.ClusterType, resourcev3.RouteType, resourcev3.EndpointType, resourcev3.SecretType}

// wildcard reports whether a type is subscribed as a wildcard.
func wildcard(t string) bool { return t == resourcev3.ListenerType || t == resourcev3.ClusterType }

// New builds a Client; it connects on Run.
func New(cfg Config) *Client {
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = wire.DefaultClusterID
	}
	v := map[string]map[string]string{}
	for _, t := range Types {
		v[t] = map[string]string{}
	}
	return &Client{cfg: cfg, res: config.NewResources(), versions: v}
}

// Run keeps a stream open until ctx ends, then returns nil. A Config without Conn,
// Handler or Node is an error.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Conn == nil || c.cfg.Handler == nil || c.cfg.Node == nil {
		return errors.New("run xds client: conn, handler and node required")
	}
	wait := c.cfg.Backoff
	for {
		got, err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			wait = c.cfg.Backoff
		}
		c.cfg.Logger.Warn("xds stream ended; reconnecting", "err", err, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(wait*2, max(MaxBackoff, c.cfg.Backoff))
	}
}

// streamContext attaches the bearer token and cluster id.
func (c *Client) streamContext(ctx context.Context) (context.Context, error) {
	md := metadata.Pairs(wire.MetadataClusterID, c.cfg.ClusterID)
	if c.cfg.TokenFile != "" {
		b, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		md.Set("authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	return metadata.NewOutgoingContext(ctx, md), nil
}

// stream runs one ADS stream; got reports whether any response arrived.
func (c *Client) stream(ctx context.Context) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sctx, err = c.streamContext(sctx)
	if err != nil {
		return false, err
	}
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.cfg.Conn).DeltaAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("open ads stream: %w", err)
	}
	subs := newSubscriptions()
	for _, t := range Types {
		if req := subs.initial(t, c.wanted(t), c.versions[t], c.cfg.Node); req != nil {
			if err := st.Send(req); err != nil {
				return false, fmt.Errorf("send subscription: %w", err)
			}
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return got, fmt.Errorf("receive: %w", err)
		}
		got = true
		ack := c.handle(resp)
		if err := st.Send(ack); err != nil {
			return got, fmt.Errorf("send ack: %w", err)
		}
		for _, t := range Types {
			if req := subs.update(t, c.wanted(t), c.versions[t], c.cfg.Node); req != nil {
				c.forget(t, req.GetResourceNamesUnsubscribe())
				if err := st.Send(req); err != nil {
					return got, fmt.Errorf("send subscription: %w", err)
				}
			}
		}
	}
}

// forget drops unsubscribed resources from the state (the server sends no removal
// for them), so a later subscription fetches them afresh.
func (c *Client) forget(t string, names []string) {
	if len(names) == 0 {
		return
	}
	next := c.res.Clone()
	for _, n := range names {
		delete(c.versions[t], n)
		switch t {
		case resourcev3.RouteType:
			delete(next.Routes, n)
		case resourcev3.EndpointType:
			delete(next.Endpoints, n)
		case resourcev3.SecretType:
			delete(next.Secrets, n)
		}
	}
	c.res = next
}

// wanted lists the names to subscribe for a by-name type (nil for wildcard types).
func (c *Client) wanted(t string) []string {
	refs := config.Refs(c.res)
	switch t {
	case resourcev3.RouteType:
		return refs.Routes
	case resourcev3.EndpointType:
		return refs.Endpoints
	case resourcev3.SecretType:
		return refs.Secrets
	}
	return nil
}

// handle applies one response and returns its ACK or NACK.
func (c *Client) handle(resp *discoveryv3.DeltaDiscoveryResponse) *discoveryv3.DeltaDiscoveryRequest {
	ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
	next, err := apply(c.res, resp)
	if err == nil {
		err = c.cfg.Handler.Apply(next)
	}
	if err != nil {
		c.cfg.Logger.Warn("xds config rejected", "type", resp.GetTypeUrl(), "err", err)
		ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return ack
	}
	c.res = next
	vs := c.versions[resp.GetTypeUrl()]
	for _, r := range resp.GetResources() {
		vs[r.GetName()] = r.GetVersion()
	}
	for _, n := range resp.GetRemovedResources() {
		delete(vs, n)
	}
	return ack
}
