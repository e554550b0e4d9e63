// Package xds serves istiod-lite's workload discovery (WDS) to ztunnels: delta xDS
// (DeltaAggregatedResources) with Istio's istio.workload.Address and
// istio.security.Authorization resources, on go-control-plane's server with one
// incremental delta cache per type (deltaCache: a change costs O(changed resources) per
// subscriber). Resources are versioned by content hash, so only changed
// resources are pushed and a reconnecting client that reports the versions it holds
// (initial_resource_versions) is not sent them again, even by a restarted istiod-lite
// (F-CP-2).
package xds

import (
	"context"
	"iter"
	"log/slog"
	"maps"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/istiod-lite/model"
)

// Type URLs of the resources served, as Istio's istiod and ztunnel name them.
const (
	TypeAddress       = "type.googleapis.com/istio.workload.Address"
	TypeAuthorization = "type.googleapis.com/istio.security.Authorization"
)

// Server is the WDS delta xDS server. Build it with New, attach it to a gRPC server with
// Register, and feed it models with Update; it is safe for concurrent use.
type Server struct {
	log     *slog.Logger
	address *deltaCache
	authz   *deltaCache
	xds     serverv3.Server

	waypoints *Waypoints // nil: waypoint types are not served

	mu           sync.Mutex
	served       *model.Model // the last model given to Update
	current      resourceSet[*workloadapi.Address]
	currentAuthz resourceSet[*security.Authorization]
}

// Option configures New.
type Option func(*Server)

// WithWaypoints also serves waypoints their Envoy configuration (listeners, routes,
// clusters, endpoints, secrets) on the same ADS, from w.
func WithWaypoints(w *Waypoints) Option { return func(s *Server) { s.waypoints = w } }

// New builds a server with empty caches: until the first Update a subscriber gets empty,
// ACKable responses for both types. A nil logger logs nowhere.
func New(logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:          logger,
		address:      newDeltaCache(TypeAddress),
		authz:        newDeltaCache(TypeAuthorization),
		current:      &model.AddressMap{},
		currentAuthz: mapSet[*security.Authorization]{},
	}
	for _, o := range opts {
		o(s)
	}
	caches := map[string]cachev3.Cache{TypeAddress: s.address, TypeAuthorization: s.authz}
	if s.waypoints != nil {
		caches[classWaypoint] = s.waypoints.cache
	}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return classify(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return classify(r.GetTypeUrl()) },
		Caches:        caches,
	}
	// go-control-plane's server takes a context only to end every stream when it is
	// done; streams here end with their gRPC server, so it never is.
	s.xds = serverv3.NewServer(context.Background(), mux, s.callbacks())
	return s
}

// Register adds the AggregatedDiscoveryService (including DeltaAggregatedResources) to g.
// Call it before g.Serve. Requests for a type other than the two served end the stream
// with an error.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

// Update makes m the served state. For each type (Address, Authorization), only the
// resources that are new or differ (proto.Equal) from the previous model are updated, and
// those absent from m removed, so subscribers get at most one delta push per type holding
// exactly the changes; an unchanged model pushes nothing. A nil model serves nothing. m
// must not be modified afterwards. It returns the number of resources upserted or
// removed (0: nothing pushed).
func (s *Server) Update(m *model.Model) (changed int) {
	if m == nil {
		m = &model.Model{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.served = m }()
	if names, ok := m.ChangedSince(s.served); ok {
		// Built from the served model with only pods changed: compare just those names.
		var n int
		s.current, n = applyNames(s.log, s.address, s.current, &m.Addresses, names)
		return n
	}
	var na, nz int
	s.current, na = apply(s.log, s.address, "address", s.current, resourceSet[*workloadapi.Address](&m.Addresses))
	s.currentAuthz, nz = apply(s.log, s.authz, "authorization", s.currentAuthz, resourceSet[*security.Authorization](mapSet[*security.Authorization](m.Authorizations)))
	return na + nz
}

// applyNames is apply restricted to names, the only resources that may differ between
// cur and next.
func applyNames(log *slog.Logger, cache *deltaCache, cur resourceSet[*workloadapi.Address], next *model.AddressMap, names []string) (resourceSet[*workloadapi.Address], int) {
	upserts := map[string]types.Resource{}
	var removed []string
	for _, name := range names {
		r, in := next.Lookup(name)
		old, was := cur.Lookup(name)
		switch {
		case in && (!was || (old != r && !proto.Equal(old, r))):
			upserts[name] = r
		case !in && was:
			removed = append(removed, name)
		}
	}
	if len(upserts) == 0 && len(removed) == 0 {
		return next, 0
	}
	if err := cache.UpdateResources(upserts, removed); err != nil {
		log.Error("update wds cache", "type", "address", "err", err)
	}
	log.Debug("wds updated", "type", "address", "upserted", len(upserts), "removed", len(removed), "total", next.Len())
	return next, len(upserts) + len(removed)
}

// apply pushes the difference between the served resources cur and next into cache and
// returns the new served set (next itself: models are immutable) and how many resources
// were upserted or removed. A resource that is the same pointer as the served one is
// unchanged without comparing it (model.Builder reuses unchanged resources), so a
// one-pod change costs a map walk, not 10,000 proto comparisons.
func apply[T proto.Message](log *slog.Logger, cache *deltaCache, kind string, cur, next resourceSet[T]) (resourceSet[T], int) {
	upserts := map[string]types.Resource{}
	kept := 0 // names of next also served now
	for name, r := range next.All() {
		old, ok := cur.Lookup(name)
		if ok {
			kept++
		}
		if !ok || (any(old) != any(r) && !proto.Equal(old, r)) {
			upserts[name] = r
		}
	}
	var removed []string
	if kept != cur.Len() { // else cur's names are all in next: nothing removed
		for name := range cur.All() {
			if _, ok := next.Lookup(name); !ok {
				removed = append(removed, name)
			}
		}
	}
	if len(upserts) == 0 && len(removed) == 0 {
		return next, 0
	}
	if err := cache.UpdateResources(upserts, removed); err != nil {
		// Only a resource that fails to marshal gets here; the cache holds the new state
		// and the watches of this push are retried on the next update.
		log.Error("update wds cache", "type", kind, "err", err)
	}
	log.Debug("wds updated", "type", kind, "upserted", len(upserts), "removed", len(removed), "total", next.Len())
	return next, len(upserts) + len(removed)
}

// resourceSet is a model's resources of one type by name: *model.AddressMap or a
// mapSet.
type resourceSet[T any] interface {
	Lookup(name string) (T, bool)
	Len() int
	All() iter.Seq2[string, T]
}

// mapSet is a plain map as a resourceSet.
type mapSet[T any] map[string]T

func (m mapSet[T]) Lookup(name string) (T, bool) { v, ok := m[name]; return v, ok }
func (m mapSet[T]) Len() int                     { return len(m) }
func (m mapSet[T]) All() iter.Seq2[string, T]    { return maps.All(m) }

// classWaypoint is the mux class of the waypoint (Envoy) types.
const classWaypoint = "waypoint"

func classify(typeURL string) string {
	if waypointTypes[typeURL] {
		return classWaypoint
	}
	return typeURL
}

// callbacks log stream lifecycles, NACKs and push sizes, and admit waypoint streams.
func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.log.Debug("xds stream open", "stream", id)
			if s.waypoints != nil {
				s.waypoints.streamOpened(ctx, id)
			}
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, node *corev3.Node) {
			s.log.Debug("xds stream closed", "stream", id, "node", node.GetId())
			if s.waypoints != nil {
				s.waypoints.streamClosed(id, node)
			}
		},
		StreamDeltaRequestFunc: func(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			if waypointTypes[r.GetTypeUrl()] {
				if s.waypoints == nil {
					return status.Errorf(codes.Unimplemented, "waypoint resources are not served")
				}
				if err := s.waypoints.authorize(id, r.GetNode()); err != nil {
					return err
				}
			}
			if d := r.GetErrorDetail(); d != nil {
				s.log.Warn("xds nack", "stream", id, "node", r.GetNode().GetId(), "type", r.GetTypeUrl(),
					"nonce", r.GetResponseNonce(), "error", d.GetMessage())
			}
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, r *discoveryv3.DeltaDiscoveryResponse) {
			s.log.Debug("xds push", "stream", id, "type", r.GetTypeUrl(), "nonce", r.GetNonce(),
				"resources", len(r.GetResources()), "removed", len(r.GetRemovedResources()))
		},
	}
}
