// Package rbac evaluates Istio's L4 authorization policies (the istio.security.Authorization
// resources delivered over WDS) against inbound connections, with the semantics of Istio's
// ztunnel: a policy matches when any of its groups matches; a group when all its rules
// match (an empty group matches everything); a rule when any of its non-empty matches
// matches (a rule without matches matches); a match when every field it sets matches
// (values of one field OR-ed, "not_" fields negated). The package is pure: it holds no
// state beyond immutable compiled policies and does no I/O.
package rbac

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ErrInvalidPolicy is wrapped by Compile for a policy that cannot be placed or acted on
// (unknown scope or action, NAMESPACE scope without a namespace). Callers reject such a
// resource rather than guess (as Istio's ztunnel rejects a policy it cannot convert).
var ErrInvalidPolicy = errors.New("invalid authorization policy")

// Connection is what a policy is evaluated against: one inbound connection to a local pod.
type Connection struct {
	// SrcIdentity is the peer's verified SPIFFE identity; zero for plaintext (no peer
	// identity), which matches no principal, namespace or service account.
	SrcIdentity spiffe.Identity
	SrcIP       netip.Addr // the connection's source (the HBONE tunnel peer, or the plaintext client)
	DstIP       netip.Addr // the pod's IP
	DstPort     uint16     // the target port on the pod
}

// Policy is a compiled Authorization, immutable and safe for concurrent use.
type Policy struct {
	Key       string // the WDS resource name, "<namespace>/<name>"
	Name      string
	Namespace string
	Scope     security.Scope
	Action    security.Action
	DryRun    bool // not enforced (as Istio: dry-run policies are only logged)

	groups []group
	proto  *security.Authorization
}

// group holds rules that must all match; rule holds matches of which one must match.
type (
	group []rule
	rule  []*match
)

// match is a compiled security.Match.
type match struct {
	// invalid marks a match holding malformed input (an address that is not an IP
	// prefix, a port beyond 65535, a string match without a kind). It is evaluated fail
	// closed: it matches in a DENY policy and never in an ALLOW policy. (Istio's ztunnel
	// drops such values, which can widen a match; Ambit never widens access on bad input.)
	invalid bool
	empty   bool // sets no field: never matches, as Istio's ztunnel

	namespaces, notNamespaces           []stringMatch
	serviceAccounts, notServiceAccounts []saMatch
	principals, notPrincipals           []stringMatch
	srcIPs, notSrcIPs                   []netip.Prefix
	dstIPs, notDstIPs                   []netip.Prefix
	ports, notPorts                     []uint16
}

type stringKind uint8

const (
	exact stringKind = iota
	prefix
	suffix
	presence
)

type stringMatch struct {
	kind  stringKind
	value string
}

type saMatch struct{ namespace, serviceAccount string }

// Compile checks and compiles a, the resource named key. Errors wrap ErrInvalidPolicy.
// Malformed values inside a match do not fail compilation; the match is evaluated fail
// closed instead (see Policy.Matches).
func Compile(key string, a *security.Authorization) (*Policy, error) {
	if a == nil {
		return nil, fmt.Errorf("compile policy %s: %w: empty", key, ErrInvalidPolicy)
	}
	switch a.GetScope() {
	case security.Scope_GLOBAL, security.Scope_WORKLOAD_SELECTOR:
	case security.Scope_NAMESPACE:
		if a.GetNamespace() == "" {
			return nil, fmt.Errorf("compile policy %s: %w: namespace scope without a namespace", key, ErrInvalidPolicy)
		}
	default:
		return nil, fmt.Errorf("compile policy %s: %w: unknown scope %d", key, ErrInvalidPolicy, a.GetScope())
	}
	switch a.GetAction() {
	case security.Action_ALLOW, security.Action_DENY:
	default:
		return nil, fmt.Errorf("compile policy %s: %w: unknown action %d", key, ErrInvalidPolicy, a.GetAction())
	}
	p := &Policy{
		Key: key, Name: a.GetName(), Namespace: a.GetNamespace(), Scope: a.GetScope(),
		Action: a.GetAction(), DryRun: a.GetDryRun(), proto: a,
	}
	for _, g := range a.GetGroups() {
		var cg group
		for _, r := range g.GetRules() {
			cr := make(rule, 0, len(r.GetMatches()))
			for _, m := range r.GetMatches() {
				cr = append(cr, compileMatch(m))
			}
			cg = append(cg, cr)
		}
		p.groups = append(p.groups, cg)
	}
	return p, nil
}

// Proto returns the resource the policy was compiled from (for config dumps); callers
// must not modify it.
func (p *Policy) Proto() *security.Authorization { return p.proto }

func compileMatch(m *security.Match) *match {
	c := &match{}
	c.namespaces = c.strings(m.GetNamespaces())
	c.notNamespaces = c.strings(m.GetNotNamespaces())
	c.principals = c.strings(m.GetPrincipals())
	c.notPrincipals = c.strings(m.GetNotPrincipals())
	c.serviceAccounts = c.accounts(m.GetServiceAccounts())
	c.notServiceAccounts = c.accounts(m.GetNotServiceAccounts())
	c.srcIPs = c.prefixes(m.GetSourceIps())
	c.notSrcIPs = c.prefixes(m.GetNotSourceIps())
	c.dstIPs = c.prefixes(m.GetDestinationIps())
	c.notDstIPs = c.prefixes(m.GetNotDestinationIps())
	c.ports = c.portList(m.GetDestinationPorts())
	c.notPorts = c.portList(m.GetNotDestinationPorts())
	c.empty = !c.invalid && len(c.namespaces)+len(c.notNamespaces)+len(c.principals)+len(c.notPrincipals)+
		len(c.serviceAccounts)+len(c.notServiceAccounts)+len(c.srcIPs)+len(c.notSrcIPs)+
		len(c.dstIPs)+len(c.notDstIPs)+len(c.ports)+len(c.notPorts) == 0
	return c
}

func (c *match) strings(in []*security.StringMatch) []stringMatch {
	out := make([]stringMatch, 0, len(in))
	for _, s := range in {
		switch t := s.GetMatchType().(type) {
		case *security.StringMatch_Exact:
			out = append(out, stringMatch{exact, t.Exact})
		case *security.StringMatch_Prefix:
			out = append(out, stringMatch{prefix, t.Prefix})
		case *security.StringMatch_Suffix:
			out = append(out, stringMatch{suffix, t.Suffix})
		case *security.StringMatch_Presence:
			out = append(out, stringMatch{kind: presence})
		default:
			c.invalid = true
		}
	}
	return out
}

func (c *match) accounts(in []*security.ServiceAccountMatch) []saMatch {
	out := make([]saMatch, 0, len(in))
	for _, s := range in {
		if s == nil {
			c.invalid = true
			continue
		}
		out = append(out, saMatch{s.GetNamespace(), s.GetServiceAccount()})
	}
	return out
}

func (c *match) prefixes(in []*security.Address) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, a := range in {
		ip, ok := netip.AddrFromSlice(a.GetAddress())
		if !ok || a.GetLength() > uint32(ip.BitLen()) {
			c.invalid = true
			continue
		}
		out = append(out, netip.PrefixFrom(ip, int(a.GetLength())).Masked())
	}
	return out
}

func (c *match) portList(in []uint32) []uint16 {
	out := make([]uint16, 0, len(in))
	for _, p := range in {
		if p > 0xffff {
			c.invalid = true
			continue
		}
		out = append(out, uint16(p))
	}
	return out
}

// Matches reports whether c matches the policy's rules, ignoring its action and dry-run
// flag. A policy without groups matches nothing (as Istio's ztunnel).
func (p *Policy) Matches(c Connection) bool {
	if len(p.groups) == 0 {
		return false
	}
	deny := p.Action == security.Action_DENY
	principal, ns := "", ""
	if !c.SrcIdentity.IsZero() {
		// Istio principals omit the scheme: "<td>/ns/<ns>/sa/<sa>".
		principal = strings.TrimPrefix(c.SrcIdentity.String(), "spiffe://")
		ns = c.SrcIdentity.Namespace
	}
	for _, g := range p.groups {
		if g.matches(c, deny, principal, ns) {
			return true
		}
	}
	return false
}

func (g group) matches(c Connection, deny bool, principal, ns string) bool {
	for _, r := range g {
		if !r.matches(c, deny, principal, ns) {
			return false
		}
	}
	return true
}

func (r rule) matches(c Connection, deny bool, principal, ns string) bool {
	if len(r) == 0 {
		return true
	}
	for _, m := range r {
		if m.matches(c, deny, principal, ns) {
			return true
		}
	}
	return false
}

func (m *match) matches(c Connection, deny bool, principal, ns string) bool {
	switch {
	case m.invalid:
		return deny
	case m.empty:
		return false
	}
	return both(m.dstIPs, m.notDstIPs, func(p netip.Prefix) bool { return p.Contains(c.DstIP.Unmap()) }) &&
		both(m.srcIPs, m.notSrcIPs, func(p netip.Prefix) bool { return p.Contains(c.SrcIP.Unmap()) }) &&
		both(m.ports, m.notPorts, func(p uint16) bool { return p == c.DstPort }) &&
		both(m.serviceAccounts, m.notServiceAccounts, func(s saMatch) bool {
			return !c.SrcIdentity.IsZero() && s.namespace == c.SrcIdentity.Namespace && s.serviceAccount == c.SrcIdentity.ServiceAccount
		}) &&
		both(m.principals, m.notPrincipals, func(s stringMatch) bool {
			// Without a peer identity no principal matches, not even a bare prefix.
			return !c.SrcIdentity.IsZero() && s.matches(principal)
		}) &&
		both(m.namespaces, m.notNamespaces, func(s stringMatch) bool { return s.matches(ns) })
}

// both is one field of a match: some positive value matches (or none is set) and no
// negative value matches.
func both[T any](pos, neg []T, fn func(T) bool) bool {
	if len(pos) > 0 && !anyOf(pos, fn) {
		return false
	}
	return !anyOf(neg, fn)
}

func anyOf[T any](vs []T, fn func(T) bool) bool {
	for _, v := range vs {
		if fn(v) {
			return true
		}
	}
	return false
}

// matches applies the string match to v literally (as Istio's ztunnel).
func (s stringMatch) matches(v string) bool {
	switch s.kind {
	case prefix:
		return strings.HasPrefix(v, s.value)
	case suffix:
		return strings.HasSuffix(v, s.value)
	case presence:
		return v != ""
	default:
		return v == s.value
	}
}
