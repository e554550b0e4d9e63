// Package xdsclient is a generic delta xDS client: it holds one DeltaAggregatedResources
// stream to a control plane, subscribes to a set of type URLs (each as a wildcard, or by
// resource names that follow the client's state), hands every
// response to a Handler and ACKs or NACKs it by the Handler's verdict. On stream errors
// it reconnects with exponential backoff and reports the versions it has accepted
// (initial_resource_versions), so the server resends only what changed (Envoy's delta
// xDS protocol, as Istio's ztunnel speaks it).
//
// This package speaks in go-control-plane's Envoy types (corev3.Node,
// discoveryv3.Resource); it is a thin layer over pkg/xdsclient/delta, which does the
// work with a minimal wire-identical message set. Binaries that mind their footprint
// (ztunnel) use delta directly and so link none of Envoy's generated API.
package xdsclient

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
)

// Backoff defaults: the first retry waits DefaultBackoff; each failure in a row doubles
// the wait up to MaxBackoff. A stream that delivered a response resets it.
const (
	DefaultBackoff = delta.DefaultBackoff
	MaxBackoff     = delta.MaxBackoff
)

// ErrUnsubscribedType is the NACK reason for a response of a type the client did not
// subscribe to; such responses never reach the Handler.
var ErrUnsubscribedType = delta.ErrUnsubscribedType

// Handler receives the resources of each response.
type Handler interface {
	// Apply is called once per response, in stream order, from the goroutine running
	// Client.Run. upserts are new or changed resources (name, version, Any payload);
	// removed are names to forget. Returning nil ACKs the response and the client counts
	// the resources as held; an error NACKs it (error_detail carries the message) and the
	// Handler must keep its previous state for that type.
	Apply(typeURL string, upserts []*discoveryv3.Resource, removed []string) error
}

// Config configures a Client.
type Config struct {
	// Conn is a connection to the control plane, dialed (and closed) by the caller.
	Conn grpc.ClientConnInterface
	// Node identifies this client; sent on the first request of each type per stream.
	Node *corev3.Node
	// TypeURLs are the resource types to subscribe to, in request order; each as a
	// wildcard ("*") unless Names says otherwise.
	TypeURLs []string
	// Names, when set, subscribes the types for which it reports byName true by exactly
	// the names it returns, re-asked after every response (see delta.Config.Names: as
	// Envoy follows its RDS, EDS and SDS references).
	Names func(typeURL string) (names []string, byName bool)
	// Forget, when set, receives the names of a by-name type the client has just
	// unsubscribed from, for the Handler's state to drop (see delta.Config.Forget).
	Forget func(typeURL string, names []string)
	// Handler receives responses. Required.
	Handler Handler
	// Backoff is the first reconnect delay (default DefaultBackoff); it doubles up to
	// MaxBackoff (or Backoff, if larger) while streams keep failing.
	Backoff time.Duration
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, receives the client's counters: ambit_xds_streams_total
	// (streams opened), ambit_xds_resources_received_total{type} and
	// ambit_xds_resources_removed_total{type} (resources in accepted or rejected
	// responses), which show what a reconnect cost (F-CP-2: nothing for an up-to-date
	// client).
	Registerer prometheus.Registerer
}

// Client is a delta xDS client. Build it with New and run it with Run.
type Client struct {
	c       *delta.Client
	nodeErr error
}

// New builds a client; it does not connect until Run.
func New(cfg Config) *Client {
	node, err := convert(cfg.Node, &delta.Node{})
	dc := delta.Config{
		Conn: cfg.Conn, Node: node, TypeURLs: cfg.TypeURLs, Names: cfg.Names, Forget: cfg.Forget,
		Backoff: cfg.Backoff, Logger: cfg.Logger, Registerer: cfg.Registerer,
	}
	if cfg.Handler != nil {
		dc.Handler = handler{cfg.Handler}
	}
	c := &Client{c: delta.New(dc)}
	if err != nil {
		c.nodeErr = fmt.Errorf("run xds client: encode node: %w", err)
	}
	return c
}

// Synced is closed once a response for every subscribed type has been accepted by the
// Handler (a NACKed response does not count), so callers can gate readiness on it. It
// stays closed across reconnects.
func (c *Client) Synced() <-chan struct{} { return c.c.Synced() }

// Run keeps a stream open until ctx ends, then returns nil. Stream failures are logged
// and retried with backoff; accepted state is kept across reconnects and across calls to
// Run. Run must not be called concurrently with itself. A Config without Conn, Handler or
// TypeURLs, or with a Node that cannot be encoded, is an error.
func (c *Client) Run(ctx context.Context) error {
	if c.nodeErr != nil {
		return c.nodeErr
	}
	return c.c.Run(ctx)
}

// handler hands delta's resources to an Envoy-typed Handler.
type handler struct{ h Handler }

func (h handler) Apply(typeURL string, upserts []*delta.Resource, removed []string) error {
	rs := make([]*discoveryv3.Resource, len(upserts))
	for i, u := range upserts {
		r, err := convert(u, &discoveryv3.Resource{})
		if err != nil {
			return fmt.Errorf("decode resource %q: %w", u.GetName(), err)
		}
		rs[i] = r
	}
	return h.h.Apply(typeURL, rs, removed)
}

// convert re-decodes from as to, field for field (both are the same wire message; fields
// one side does not know travel as unknown fields). A nil from gives a nil to.
func convert[From, To proto.Message](from From, to To) (To, error) {
	var zero To
	if !from.ProtoReflect().IsValid() {
		return zero, nil
	}
	b, err := proto.Marshal(from)
	if err != nil {
		return zero, err
	}
	if err := proto.Unmarshal(b, to); err != nil {
		return zero, err
	}
	return to, nil
}
