// Package state is ztunnel's view of the mesh: the workloads and services received over
// WDS (Istio's istio.workload.Address resources), indexed for the lookups the proxy makes
// per connection (by IP, by service VIP, by uid), and the authorization policies
// (istio.security.Authorization resources) compiled for the rbac evaluator.
package state

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"

	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/rbac"
)

// TypeAddress and TypeAuthorization are the WDS resource type URLs, as Istio names them.
const (
	TypeAddress       = "type.googleapis.com/istio.workload.Address"
	TypeAuthorization = "type.googleapis.com/istio.security.Authorization"
)

// ErrBadResource is wrapped by Apply for resources that do not decode; the whole response
// is then NACKed and the previous state kept.
var ErrBadResource = errors.New("bad wds resource")

// Workload is a decoded Istio workload with its addresses parsed.
type Workload struct {
	*workloadapi.Workload
	IPs []netip.Addr
}

// Identity is the workload's SPIFFE identity.
func (w *Workload) Identity() spiffe.Identity {
	sa := w.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	td := w.TrustDomain
	if td == "" {
		td = spiffe.DefaultTrustDomain
	}
	return spiffe.Identity{TrustDomain: td, Namespace: w.Namespace, ServiceAccount: sa}
}

// HBONE reports whether the workload accepts HBONE (it is enrolled in the mesh).
func (w *Workload) HBONE() bool {
	return w.TunnelProtocol == workloadapi.TunnelProtocol_HBONE
}

// Service is a decoded Istio service with its VIPs parsed.
type Service struct {
	*workloadapi.Service
	Key  string // "<namespace>/<hostname>", the WDS resource name
	VIPs []netip.Addr
}

// index is an immutable snapshot of the store; lookups read it without locks.
type index struct {
	workloads map[string]*Workload // by uid/resource name
	services  map[string]*Service  // by resource name
	byIP      map[netip.Addr]*Workload
	byVIP     map[netip.Addr]*Service
	endpoints map[string][]*Workload // service key -> backing workloads, sorted by uid
}

// Store holds the WDS state. The zero value is not usable; call New.
type Store struct {
	mu  sync.Mutex // serialises writers
	raw map[string]*workloadapi.Address
	cur atomic.Pointer[index]
	// onChange subscribers, called after each applied update.
	subs []func()

	pol       policyState
	policies  atomic.Pointer[rbac.Set]
	policyGen atomic.Uint64
}

// New returns an empty store.
func New() *Store {
	s := &Store{raw: map[string]*workloadapi.Address{}}
	s.cur.Store(buildIndex(s.raw))
	s.pol = policyState{compiled: map[string]*rbac.Policy{}, changed: make(chan struct{})}
	s.policies.Store(rbac.NewSet(nil))
	return s
}

// Subscribe registers fn to be called after every applied change.
func (s *Store) Subscribe(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, fn)
}

// Apply implements delta.Handler (pkg/xdsclient/delta) for the Address and
// Authorization types: it decodes every upserted resource first and applies nothing if
// any fails (the error wraps ErrBadResource; the response is NACKed). Other type URLs
// are accepted and ignored.
func (s *Store) Apply(typeURL string, upserts []*delta.Resource, removed []string) error {
	switch typeURL {
	case TypeAddress:
		return s.applyAddress(upserts, removed)
	case TypeAuthorization:
		return s.applyAuthorization(upserts, removed)
	}
	return nil
}

func (s *Store) applyAddress(upserts []*delta.Resource, removed []string) error {
	decoded := make(map[string]*workloadapi.Address, len(upserts))
	for _, r := range upserts {
		addr := &workloadapi.Address{}
		if r.GetResource() == nil {
			return fmt.Errorf("apply %s: %w: empty resource", r.GetName(), ErrBadResource)
		}
		if err := r.GetResource().UnmarshalTo(addr); err != nil {
			return fmt.Errorf("apply %s: %w: %w", r.GetName(), ErrBadResource, err)
		}
		if addr.GetType() == nil {
			return fmt.Errorf("apply %s: %w: neither workload nor service", r.GetName(), ErrBadResource)
		}
		decoded[r.GetName()] = addr
	}
	s.mu.Lock()
	next := make(map[string]*workloadapi.Address, len(s.raw)+len(decoded))
	for k, v := range s.raw {
		next[k] = v
	}
	relevant := false
	for _, name := range removed {
		relevant = relevant || policyRelevant(next[name], nil)
		delete(next, name)
	}
	for k, v := range decoded {
		relevant = relevant || policyRelevant(next[k], v)
		next[k] = v
	}
	s.raw = next
	s.cur.Store(buildIndex(next))
	if relevant {
		s.policyChangedLocked()
	}
	subs := append([]func(){}, s.subs...)
	s.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	return nil
}

func buildIndex(raw map[string]*workloadapi.Address) *index {
	ix := &index{
		workloads: map[string]*Workload{},
		services:  map[string]*Service{},
		byIP:      map[netip.Addr]*Workload{},
		byVIP:     map[netip.Addr]*Service{},
		endpoints: map[string][]*Workload{},
	}
	for name, a := range raw {
		switch {
		case a.GetWorkload() != nil:
			w := &Workload{Workload: a.GetWorkload()}
			for _, b := range w.Addresses {
				if ip, ok := netip.AddrFromSlice(b); ok {
					w.IPs = append(w.IPs, ip.Unmap())
					ix.byIP[ip.Unmap()] = w
				}
			}
			ix.workloads[name] = w
		case a.GetService() != nil:
			svc := &Service{Service: a.GetService(), Key: name}
			for _, na := range svc.Addresses {
				if ip, ok := netip.AddrFromSlice(na.GetAddress()); ok {
					svc.VIPs = append(svc.VIPs, ip.Unmap())
					ix.byVIP[ip.Unmap()] = svc
				}
			}
			ix.services[name] = svc
		}
	}
	for _, w := range ix.workloads {
		for key := range w.Services {
			ix.endpoints[key] = append(ix.endpoints[key], w)
		}
	}
	for _, eps := range ix.endpoints {
		sort.Slice(eps, func(i, j int) bool { return eps[i].Uid < eps[j].Uid })
	}
	return ix
}

// WorkloadByIP returns the workload owning ip, or nil.
func (s *Store) WorkloadByIP(ip netip.Addr) *Workload { return s.cur.Load().byIP[ip.Unmap()] }

// WorkloadByUID returns the workload with the given uid, or nil.
func (s *Store) WorkloadByUID(uid string) *Workload { return s.cur.Load().workloads[uid] }

// ServiceByVIP returns the service with VIP ip, or nil.
func (s *Store) ServiceByVIP(ip netip.Addr) *Service { return s.cur.Load().byVIP[ip.Unmap()] }

// Service returns the service whose WDS resource name is key ("<namespace>/<hostname>"),
// nil when unknown.
func (s *Store) Service(key string) *Service { return s.cur.Load().services[key] }

// Endpoints returns the workloads backing the service with the given key, sorted by uid.
// The slice is shared: callers must not modify it.
func (s *Store) Endpoints(key string) []*Workload { return s.cur.Load().endpoints[key] }

// Workloads returns all workloads sorted by uid (for config_dump).
func (s *Store) Workloads() []*Workload {
	ix := s.cur.Load()
	out := make([]*Workload, 0, len(ix.workloads))
	for _, w := range ix.workloads {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Uid < out[j].Uid })
	return out
}

// Services returns all services sorted by key (for config_dump).
func (s *Store) Services() []*Service {
	ix := s.cur.Load()
	out := make([]*Service, 0, len(ix.services))
	for _, svc := range ix.services {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
