// Package delta is a lean delta xDS client: it holds one DeltaAggregatedResources
// stream to a control plane, subscribes to a set of type URLs (each as a wildcard, or by
// resource names that may change as the client's state does, as Envoy subscribes to
// routes, endpoints and secrets), hands every
// response to a Handler and ACKs or NACKs it by the Handler's verdict. On stream errors
// it reconnects with exponential backoff and reports the versions it has accepted
// (initial_resource_versions), so the server resends only what changed (Envoy's delta
// xDS protocol, as Istio's ztunnel speaks it).
//
// Its messages (delta.proto) are the subset of Envoy's discovery messages a client
// needs, under Ambit's own proto package and with Envoy's field numbers, so the bytes
// on the wire, the gRPC method and the content type are those of an Envoy-typed client
// while a binary using this package links none of go-control-plane's generated API
// (for ztunnel that graph was several MB of resident memory). pkg/xdsclient offers the
// same client with Envoy's Go types.
package delta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// MethodDeltaAggregatedResources is the gRPC method of Envoy's delta ADS stream.
const MethodDeltaAggregatedResources = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

var deltaADS = grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true}

// Backoff defaults: the first retry waits DefaultBackoff; each failure in a row doubles
// the wait up to MaxBackoff. A stream that delivered a response resets it.
const (
	DefaultBackoff = 500 * time.Millisecond
	MaxBackoff     = 30 * time.Second
)

// ErrUnsubscribedType is the NACK reason for a response of a type the client did not
// subscribe to; such responses never reach the Handler.
var ErrUnsubscribedType = errors.New("response for unsubscribed type")

// Handler receives the resources of each response.
type Handler interface {
	// Apply is called once per response, in stream order, from the goroutine running
	// Client.Run. upserts are new or changed resources (name, version, Any payload);
	// removed are names to forget. Returning nil ACKs the response and the client counts
	// the resources as held; an error NACKs it (error_detail carries the message) and the
	// Handler must keep its previous state for that type.
	Apply(typeURL string, upserts []*Resource, removed []string) error
}

// Config configures a Client.
type Config struct {
	// Conn is a connection to the control plane, dialed (and closed) by the caller.
	Conn grpc.ClientConnInterface
	// Node identifies this client; sent on the first request of each type per stream.
	Node *Node
	// TypeURLs are the resource types to subscribe to, in request order; each as a
	// wildcard ("*") unless Names says otherwise.
	TypeURLs []string
	// Names, when set, says how each type is subscribed: byName false subscribes it as a
	// wildcard (as without Names); byName true subscribes exactly names. A type must
	// answer byName the same way every time. Names is called from Run's goroutine before
	// each stream's first requests and after every response, and the client then sends
	// resource_names_subscribe / resource_names_unsubscribe for what changed (Envoy
	// follows the RDS, EDS and SDS names its listeners and clusters refer to this way).
	// A by-name type is first requested, with Node, once it has a name: an empty first
	// request would mean wildcard. Synced counts a by-name type once a response for it is
	// accepted.
	Names func(typeURL string) (names []string, byName bool)
	// Forget, when set, is called from Run's goroutine with names of a by-name type the
	// client has just unsubscribed from. The server sends no removal for them, so a
	// Handler that keeps state drops them here; the client forgets their versions, so a
	// later subscription fetches them afresh.
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
	cfg        Config
	synced     chan struct{}
	syncedOnce sync.Once

	// Touched only by the goroutine in Run.
	versions map[string]map[string]string // type URL -> resource name -> accepted version
	accepted map[string]bool              // type URLs with an accepted response

	streams           prometheus.Counter
	received, removed *prometheus.CounterVec
}

// New builds a client; it does not connect until Run.
func New(cfg Config) *Client {
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{
		cfg:      cfg,
		synced:   make(chan struct{}),
		versions: map[string]map[string]string{},
		accepted: map[string]bool{},
	}
	for _, t := range cfg.TypeURLs {
		c.versions[t] = map[string]string{}
	}
	c.streams = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ambit_xds_streams_total", Help: "Delta xDS streams opened to the control plane."})
	c.received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ambit_xds_resources_received_total", Help: "Resources received in delta xDS responses, by type URL."}, []string{"type"})
	c.removed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ambit_xds_resources_removed_total", Help: "Resource removals received in delta xDS responses, by type URL."}, []string{"type"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(c.streams, c.received, c.removed)
	}
	return c
}

// Synced is closed once a response for every subscribed type has been accepted by the
// Handler (a NACKed response does not count), so callers can gate readiness on it. It
// stays closed across reconnects.
func (c *Client) Synced() <-chan struct{} { return c.synced }

// Run keeps a stream open until ctx ends, then returns nil. Stream failures are logged
// and retried with backoff; accepted state is kept across reconnects and across calls to
// Run. Run must not be called concurrently with itself. A Config without Conn, Handler or
// TypeURLs is an error.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Conn == nil || c.cfg.Handler == nil || len(c.cfg.TypeURLs) == 0 {
		return errors.New("run xds client: config needs Conn, Handler and TypeURLs")
	}
	maxWait := max(MaxBackoff, c.cfg.Backoff)
	wait := c.cfg.Backoff
	for {
		gotResponse, err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if gotResponse {
			wait = c.cfg.Backoff
		}
		c.cfg.Logger.Warn("xds stream ended; reconnecting", "err", err, "after", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// stream runs one DeltaAggregatedResources stream until it fails or ctx ends. It
// reports whether any response arrived.
func (c *Client) stream(ctx context.Context) (gotResponse bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.cfg.Conn.NewStream(ctx, &deltaADS, MethodDeltaAggregatedResources)
	if err != nil {
		return false, fmt.Errorf("open delta ads stream: %w", err)
	}
	sub := newSubscription()
	if err := c.sendSubscriptions(s, sub); err != nil {
		return false, err
	}
	c.streams.Inc()
	c.cfg.Logger.Info("xds stream open", "types", c.cfg.TypeURLs)
	for {
		resp := &Response{}
		if err := s.RecvMsg(resp); err != nil {
			return gotResponse, fmt.Errorf("receive: %w", err)
		}
		gotResponse = true
		if err := s.SendMsg(c.handle(resp)); err != nil {
			return gotResponse, fmt.Errorf("send ack: %w", err)
		}
		if err := c.sendSubscriptions(s, sub); err != nil {
			return gotResponse, err
		}
	}
}

// sendSubscriptions sends the requests that bring sub up to date (subscribe).
func (c *Client) sendSubscriptions(s grpc.ClientStream, sub *subscription) error {
	for _, req := range c.subscribe(sub) {
		if err := s.SendMsg(req); err != nil {
			return fmt.Errorf("subscribe %s: %w", req.GetTypeUrl(), err)
		}
	}
	return nil
}

// handle applies one response and returns its ACK or NACK.
func (c *Client) handle(resp *Response) *Request {
	t := resp.GetTypeUrl()
	ack := &Request{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if _, ok := c.versions[t]; ok {
		c.received.WithLabelValues(t).Add(float64(len(resp.GetResources())))
		c.removed.WithLabelValues(t).Add(float64(len(resp.GetRemovedResources())))
	}
	var err error
	if held, ok := c.versions[t]; !ok {
		err = fmt.Errorf("%w: %q", ErrUnsubscribedType, t)
	} else if err = c.cfg.Handler.Apply(t, resp.GetResources(), resp.GetRemovedResources()); err == nil {
		for _, r := range resp.GetResources() {
			held[r.GetName()] = r.GetVersion()
		}
		for _, name := range resp.GetRemovedResources() {
			delete(held, name)
		}
		c.markAccepted(t)
	}
	if err != nil {
		c.cfg.Logger.Warn("xds nack", "type", t, "nonce", resp.GetNonce(), "err", err)
		ack.ErrorDetail = &Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
	}
	return ack
}

func (c *Client) markAccepted(typeURL string) {
	c.accepted[typeURL] = true
	for _, t := range c.cfg.TypeURLs {
		if !c.accepted[t] {
			return
		}
	}
	c.syncedOnce.Do(func() { close(c.synced) })
}

func cloneVersions(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
