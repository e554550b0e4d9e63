package policy

import (
	"net/netip"
	"strings"

	"istio.io/istio/pkg/workloadapi/security"
)

// This file is a test-only model of how ztunnel enforces Authorization resources
// (istio/ztunnel src/rbac.rs and its policy store), so the conversion tests can assert
// decisions, not only shapes.

// conn is one inbound connection as ztunnel sees it.
type conn struct {
	id  string // "spiffe://td/ns/<ns>/sa/<sa>", or "" for plaintext
	src netip.Addr
	dst netip.AddrPort
}

// identity splits a SPIFFE id into namespace and service account.
func (c conn) identity() (ns, sa string, ok bool) {
	rest, found := strings.CutPrefix(c.id, "spiffe://")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

// decide applies ztunnel's rule: deny when any DENY policy matches; allow when no ALLOW
// policy applies or one matches; deny otherwise. The policies that apply are the GLOBAL
// ones, the NAMESPACE ones of the workload's namespace, and those the workload lists.
func decide(all map[string]*security.Authorization, namespace string, listed []string, c conn) bool {
	var applicable []*security.Authorization
	for _, a := range all {
		switch a.Scope {
		case security.Scope_GLOBAL:
			applicable = append(applicable, a)
		case security.Scope_NAMESPACE:
			if a.Namespace == namespace {
				applicable = append(applicable, a)
			}
		}
	}
	for _, name := range listed {
		if a := all[name]; a != nil && a.Scope == security.Scope_WORKLOAD_SELECTOR {
			applicable = append(applicable, a)
		}
	}
	haveAllow, allowed := false, false
	for _, a := range applicable {
		m := matches(a, c)
		if a.Action == security.Action_DENY && m {
			return false
		}
		if a.Action == security.Action_ALLOW {
			haveAllow = true
			allowed = allowed || m
		}
	}
	return !haveAllow || allowed
}

// matches: groups OR-ed (none: no match); within a group, clauses AND-ed; within a
// clause, matches OR-ed, an empty Match never matching and an empty clause matching.
func matches(a *security.Authorization, c conn) bool {
	for _, g := range a.Groups {
		if groupMatches(g, c) {
			return true
		}
	}
	return false
}

func groupMatches(g *security.Group, c conn) bool {
	for _, clause := range g.Rules {
		if len(clause.Matches) == 0 {
			continue
		}
		hit := false
		for _, m := range clause.Matches {
			if !isEmptyMatch(m) && matchOne(m, c) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func matchOne(m *security.Match, c conn) bool {
	ns, sa, hasID := c.identity()
	principal := strings.TrimPrefix(c.id, "spiffe://")
	return field(m.DestinationIps, m.NotDestinationIps, func(a *security.Address) bool { return inPrefix(a, c.dst.Addr()) }) &&
		field(m.SourceIps, m.NotSourceIps, func(a *security.Address) bool { return inPrefix(a, c.src) }) &&
		field(m.DestinationPorts, m.NotDestinationPorts, func(p uint32) bool { return p == uint32(c.dst.Port()) }) &&
		field(m.ServiceAccounts, m.NotServiceAccounts, func(s *security.ServiceAccountMatch) bool {
			return hasID && s.Namespace == ns && s.ServiceAccount == sa
		}) &&
		field(m.Principals, m.NotPrincipals, func(s *security.StringMatch) bool { return hasID && stringMatch(s, principal) }) &&
		field(m.Namespaces, m.NotNamespaces, func(s *security.StringMatch) bool { return stringMatch(s, ns) })
}

func field[T any](pos, neg []T, pred func(T) bool) bool {
	if len(pos) > 0 && !anyOf(pos, pred) {
		return false
	}
	return len(neg) == 0 || !anyOf(neg, pred)
}

func anyOf[T any](vs []T, pred func(T) bool) bool {
	for _, v := range vs {
		if pred(v) {
			return true
		}
	}
	return false
}

func stringMatch(s *security.StringMatch, v string) bool {
	switch t := s.MatchType.(type) {
	case *security.StringMatch_Exact:
		return v == t.Exact
	case *security.StringMatch_Prefix:
		return strings.HasPrefix(v, t.Prefix)
	case *security.StringMatch_Suffix:
		return strings.HasSuffix(v, t.Suffix)
	case *security.StringMatch_Presence:
		return v != ""
	}
	return false
}

func inPrefix(a *security.Address, ip netip.Addr) bool {
	addr, ok := netip.AddrFromSlice(a.Address)
	if !ok {
		return false
	}
	p, err := addr.Prefix(int(a.Length))
	return err == nil && p.Contains(ip)
}
