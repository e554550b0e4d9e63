package state

import (
	"fmt"
	"slices"

	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/rbac"
)

// policyState is the authorization half of the store; guarded by Store.mu except the
// atomics, which readers load without locks.
type policyState struct {
	compiled map[string]*rbac.Policy // by WDS resource name
	changed  chan struct{}           // closed and replaced on every policy-relevant change
}

// applyAuthorization handles the Authorization type: every upsert is decoded and compiled
// first and nothing is applied if one fails (the response is NACKed and the previous
// policies kept). Policies are keyed by resource name ("<ns>/<name>"), the key workloads
// use in authorization_policies (as Istio's ztunnel).
func (s *Store) applyAuthorization(upserts []*delta.Resource, removed []string) error {
	compiled := make(map[string]*rbac.Policy, len(upserts))
	for _, r := range upserts {
		if r.GetResource() == nil {
			return fmt.Errorf("apply %s: %w: empty resource", r.GetName(), ErrBadResource)
		}
		a := &security.Authorization{}
		if err := r.GetResource().UnmarshalTo(a); err != nil {
			return fmt.Errorf("apply %s: %w: %w", r.GetName(), ErrBadResource, err)
		}
		p, err := rbac.Compile(r.GetName(), a)
		if err != nil {
			return fmt.Errorf("apply %s: %w: %w", r.GetName(), ErrBadResource, err)
		}
		compiled[r.GetName()] = p
	}
	s.mu.Lock()
	next := make(map[string]*rbac.Policy, len(s.pol.compiled)+len(compiled))
	for k, v := range s.pol.compiled {
		next[k] = v
	}
	for _, name := range removed {
		delete(next, name)
	}
	for k, v := range compiled {
		next[k] = v
	}
	s.pol.compiled = next
	list := make([]*rbac.Policy, 0, len(next))
	for _, p := range next {
		list = append(list, p)
	}
	s.policies.Store(rbac.NewSet(list))
	s.policyChangedLocked()
	subs := append([]func(){}, s.subs...)
	s.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	return nil
}

// policyChangedLocked publishes a policy-relevant change: the generation is bumped after
// the new state is stored, then waiters are woken. s.mu must be held.
func (s *Store) policyChangedLocked() {
	s.policyGen.Add(1)
	close(s.pol.changed)
	s.pol.changed = make(chan struct{})
}

// Policies returns the current authorization policies (never nil). The snapshot is
// immutable; load it once per decision.
func (s *Store) Policies() *rbac.Set { return s.policies.Load() }

// PolicyGeneration counts policy-relevant changes: Authorization updates and workload
// updates that change a workload's namespace, addresses or authorization_policies. A
// caller that decided with generation g and later reads a different value must decide
// again; the new state is visible before the generation moves.
func (s *Store) PolicyGeneration() uint64 { return s.policyGen.Load() }

// PolicyChanged returns a channel closed at the next policy-relevant change (see
// PolicyGeneration). Take the channel before reading the state it guards.
func (s *Store) PolicyChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pol.changed
}

// policyRelevant reports whether replacing prev with cur (either may be nil) can change an
// authorization decision: a workload appears, disappears, or changes the attributes
// policies are selected by.
func policyRelevant(prev, cur *workloadapi.Address) bool {
	ow, nw := prev.GetWorkload(), cur.GetWorkload()
	switch {
	case ow == nil && nw == nil:
		return false
	case ow == nil || nw == nil:
		return true
	}
	return ow.GetNamespace() != nw.GetNamespace() ||
		!slices.Equal(ow.GetAuthorizationPolicies(), nw.GetAuthorizationPolicies()) ||
		!slices.EqualFunc(ow.GetAddresses(), nw.GetAddresses(), slices.Equal[[]byte])
}
