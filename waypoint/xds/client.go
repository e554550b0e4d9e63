// Package xds is the waypoint's delta xDS client: one DeltaAggregatedResources stream
// (Envoy's ADS, go-control-plane v3 types) to istiod-lite, subscribed as Envoy
// subscribes: wildcard to listeners and clusters, by name to the route configurations,
// cluster load assignments and secrets the current state refers to. Each response is
// applied to a copy of the accepted state and handed to a Handler; the client ACKs when
// the Handler accepts and NACKs (error_detail with the Handler's message) when it
// rejects, keeping the previous state. The bearer token is re-read from a file on every
// connect and sent as "authorization: Bearer <token>" with "clusterid", as for the CA
// (wire.md). Stream failures are retried with exponential backoff.
//
// The stream itself (subscriptions, ACK/NACK, versions across reconnects, backoff) is
// pkg/xdsclient's; this package supplies the waypoint's state, its references and the
// token.
package xds

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"

	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/pkg/xdsclient"
	"github.com/ambitmesh/ambit/waypoint/config"
)

// Backoff bounds: the first retry waits DefaultBackoff, doubling per failure in a row up
// to MaxBackoff; a stream that delivered a response resets it (pkg/xdsclient's).
const (
	DefaultBackoff = xdsclient.DefaultBackoff
	MaxBackoff     = xdsclient.MaxBackoff
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
	cfg Config
	xc  *xdsclient.Client
	res *config.Resources // accepted state; touched only by Run's goroutine
}

// Types are the resource types the waypoint subscribes to, in subscription order.
var Types = []string{resourcev3.ListenerType, resourcev3.ClusterType, resourcev3.RouteType, resourcev3.EndpointType, resourcev3.SecretType}

// New builds a Client; it connects on Run.
func New(cfg Config) *Client {
	if cfg.ClusterID == "" {
		cfg.ClusterID = wire.DefaultClusterID
	}
	c := &Client{cfg: cfg, res: config.NewResources()}
	var conn grpc.ClientConnInterface
	if cfg.Conn != nil {
		conn = tokenConn{ClientConnInterface: cfg.Conn, tokenFile: cfg.TokenFile, clusterID: cfg.ClusterID}
	}
	c.xc = xdsclient.New(xdsclient.Config{
		Conn: conn, Node: cfg.Node, TypeURLs: Types, Handler: handler{c},
		Names: c.names, Forget: c.forget, Backoff: cfg.Backoff, Logger: cfg.Logger,
	})
	return c
}

// Run keeps a stream open until ctx ends, then returns nil. A Config without Conn,
// Handler or Node is an error.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Conn == nil || c.cfg.Handler == nil || c.cfg.Node == nil {
		return errors.New("run xds client: conn, handler and node required")
	}
	return c.xc.Run(ctx)
}

// names subscribes listeners and clusters as wildcards and the other types by the
// names the accepted state refers to.
func (c *Client) names(t string) ([]string, bool) {
	refs := config.Refs(c.res)
	switch t {
	case resourcev3.RouteType:
		return refs.Routes, true
	case resourcev3.EndpointType:
		return refs.Endpoints, true
	case resourcev3.SecretType:
		return refs.Secrets, true
	}
	return nil, false
}

// forget drops unsubscribed resources from the state (the server sends no removal for
// them), so a later subscription fetches them afresh.
func (c *Client) forget(t string, names []string) {
	next := c.res.Clone()
	drop(next, t, names)
	c.res = next
}

// handler applies one response to a copy of the state and asks the Handler.
type handler struct{ c *Client }

func (h handler) Apply(t string, upserts []*discoveryv3.Resource, removed []string) error {
	next, err := apply(h.c.res, t, upserts, removed)
	if err == nil {
		err = h.c.cfg.Handler.Apply(next)
	}
	if err != nil {
		return err
	}
	h.c.res = next
	return nil
}
