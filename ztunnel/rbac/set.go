package rbac

import (
	"sort"

	"istio.io/istio/pkg/workloadapi/security"
)

// Destination is the local workload a connection is for, as WDS describes it.
type Destination struct {
	Namespace string
	Name      string // for logs only
	// Policies are the keys ("<ns>/<name>") of the selector-scoped policies that apply to
	// the workload (Workload.authorization_policies).
	Policies []string
}

// Reasons a Decision gives.
const (
	ReasonDenyMatched     = "deny policy matched"
	ReasonAllowMatched    = "allow policy matched"
	ReasonNoAllowMatched  = "no allow policy matched"
	ReasonNoAllowPolicies = "no allow policies"
)

// Decision is the outcome of an evaluation.
type Decision struct {
	Allow  bool
	Policy string // key of the deciding policy; "" when none decided
	Reason string // one of the Reason... constants, or a caller's own reason
}

// Set is an immutable set of compiled policies indexed as Istio's ztunnel indexes them:
// GLOBAL-scoped policies apply to every workload, NAMESPACE-scoped ones to the workloads
// of their namespace, WORKLOAD_SELECTOR-scoped ones only where a workload names them.
// The zero value and nil are empty sets.
type Set struct {
	byKey  map[string]*Policy
	byNS   map[string][]*Policy // namespace -> NAMESPACE-scoped policies, sorted by key
	global []*Policy            // GLOBAL-scoped policies, sorted by key
	sorted []*Policy
}

// NewSet indexes policies; a later policy with the same key replaces an earlier one.
func NewSet(policies []*Policy) *Set {
	s := &Set{byKey: make(map[string]*Policy, len(policies)), byNS: map[string][]*Policy{}}
	for _, p := range policies {
		if p != nil {
			s.byKey[p.Key] = p
		}
	}
	for _, p := range s.byKey {
		s.sorted = append(s.sorted, p)
	}
	sort.Slice(s.sorted, func(i, j int) bool { return s.sorted[i].Key < s.sorted[j].Key })
	for _, p := range s.sorted {
		switch p.Scope {
		case security.Scope_GLOBAL:
			s.global = append(s.global, p)
		case security.Scope_NAMESPACE:
			s.byNS[p.Namespace] = append(s.byNS[p.Namespace], p)
		}
	}
	return s
}

// Get returns the policy with key, or nil.
func (s *Set) Get(key string) *Policy {
	if s == nil {
		return nil
	}
	return s.byKey[key]
}

// Policies returns every policy sorted by key; callers must not modify the slice.
func (s *Set) Policies() []*Policy {
	if s == nil {
		return nil
	}
	return s.sorted
}

// Len is the number of policies.
func (s *Set) Len() int { return len(s.Policies()) }

// Evaluate decides c for destination d in Istio's order: a matching DENY policy denies;
// otherwise, if no ALLOW policy applies the connection is allowed, else it is allowed
// only if one matches. Dry-run policies are skipped; policy keys d names that the set
// does not hold are skipped (as Istio's ztunnel: the control plane has not sent them yet).
func (s *Set) Evaluate(d Destination, c Connection) Decision {
	if p := s.first(d, security.Action_DENY, c); p != nil {
		return Decision{Allow: false, Policy: p.Key, Reason: ReasonDenyMatched}
	}
	anyAllow := false
	s.each(d, func(p *Policy) bool {
		anyAllow = p.Action == security.Action_ALLOW
		return !anyAllow
	})
	if !anyAllow {
		return Decision{Allow: true, Reason: ReasonNoAllowPolicies}
	}
	if p := s.first(d, security.Action_ALLOW, c); p != nil {
		return Decision{Allow: true, Policy: p.Key, Reason: ReasonAllowMatched}
	}
	return Decision{Allow: false, Reason: ReasonNoAllowMatched}
}

// first returns the first applicable policy with action that matches c.
func (s *Set) first(d Destination, action security.Action, c Connection) *Policy {
	var found *Policy
	s.each(d, func(p *Policy) bool {
		if p.Action == action && p.Matches(c) {
			found = p
			return false
		}
		return true
	})
	return found
}

// each calls fn for every enforced policy that applies to d, each once, in Istio's
// order (namespace, global, then the workload's own), until fn returns false.
func (s *Set) each(d Destination, fn func(*Policy) bool) {
	if s == nil {
		return
	}
	for _, list := range [][]*Policy{s.byNS[d.Namespace], s.global} {
		for _, p := range list {
			if !p.DryRun && !fn(p) {
				return
			}
		}
	}
	for i, key := range d.Policies {
		p := s.byKey[key]
		if p == nil || p.DryRun || s.viaScope(d, p) || duplicate(d.Policies[:i], key) {
			continue
		}
		if !fn(p) {
			return
		}
	}
}

// viaScope reports whether p already applied to d through its scope.
func (s *Set) viaScope(d Destination, p *Policy) bool {
	return p.Scope == security.Scope_GLOBAL || (p.Scope == security.Scope_NAMESPACE && p.Namespace == d.Namespace)
}

func duplicate(seen []string, key string) bool {
	for _, k := range seen {
		if k == key {
			return true
		}
	}
	return false
}
