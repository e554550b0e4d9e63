package policy

import (
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi/security"
)

// Set is every Authorization derived from one snapshot's AuthorizationPolicies and
// PeerAuthentications, with the problems found, and the index that tells which
// selector-scoped policies each workload lists. Build it with Build; it is immutable
// afterwards and safe for concurrent reads.
type Set struct {
	// Authorizations holds each resource by its name, "<namespace>/<name>".
	Authorizations map[string]*security.Authorization
	// Problems lists every object problem, sorted by kind, namespace, name, message.
	Problems []Problem

	root      string
	selectors map[string][]selectorPolicy // WORKLOAD_SELECTOR policies by namespace, by name
	peer      *peerIndex
}

// selectorPolicy is a WORKLOAD_SELECTOR AuthorizationPolicy and the labels it selects.
type selectorPolicy struct {
	name   string // resource name
	labels map[string]string
}

// Build converts every policy (see ConvertAuthorizationPolicy and the PeerAuthentication
// rules in convertPeerAuth) into one Set. Nil entries are skipped. Two
// AuthorizationPolicies with the same namespace and name (possible only in a config
// directory) keep the first and report the second.
func Build(aps []*securityv1.AuthorizationPolicy, pas []*securityv1.PeerAuthentication, o Options) *Set {
	o = o.withDefaults()
	s := &Set{
		Authorizations: map[string]*security.Authorization{},
		root:           o.RootNamespace,
		selectors:      map[string][]selectorPolicy{},
	}
	seen := map[string]bool{}
	for _, ap := range aps {
		if ap == nil {
			continue
		}
		name := ResourceName(ap.Namespace, ap.Name)
		if seen[name] {
			s.Problems = append(s.Problems, Problem{Kind: KindAuthorizationPolicy, Namespace: ap.Namespace, Name: ap.Name,
				Message: "duplicate object; the first one is used"})
			continue
		}
		seen[name] = true
		a, selector, problems := convertAuthorizationPolicy(ap, s.root)
		s.Problems = append(s.Problems, problems...)
		if a == nil {
			continue
		}
		s.Authorizations[name] = a
		if a.Scope == security.Scope_WORKLOAD_SELECTOR {
			s.selectors[ap.Namespace] = append(s.selectors[ap.Namespace], selectorPolicy{name: name, labels: selector})
		}
	}
	for _, sps := range s.selectors {
		slices.SortFunc(sps, func(a, b selectorPolicy) int { return strings.Compare(a.name, b.name) })
	}
	var problems []Problem
	s.peer, problems = newPeerIndex(pas, s.root)
	s.Problems = append(s.Problems, problems...)
	s.peer.authorizations(s.Authorizations)
	sortProblems(s.Problems)
	return s
}

// PoliciesFor returns the value of Workload.authorization_policies for a workload in
// namespace with labels, as Istio fills it: the names of the WORKLOAD_SELECTOR
// AuthorizationPolicies in that namespace or the root namespace whose selector labels
// are all on the workload, sorted, followed by the PeerAuthentication-derived policy it
// references (its converted_peer_authentication_ policy or the static STRICT policy), if
// any. NAMESPACE and GLOBAL policies are not listed: ztunnel applies them by scope. Nil
// when none apply. A nil Set lists nothing.
func (s *Set) PoliciesFor(namespace string, labels map[string]string) []string {
	if s == nil {
		return nil
	}
	var out []string
	add := func(ns string) {
		for _, sp := range s.selectors[ns] {
			if selects(sp.labels, labels) {
				out = append(out, sp.name)
			}
		}
	}
	add(namespace)
	if namespace != s.root {
		add(s.root)
	}
	slices.Sort(out)
	return append(out, s.peer.keysFor(namespace, labels)...)
}
