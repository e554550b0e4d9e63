package envoy

import (
	"regexp"
	"strconv"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// PolicyName is the Envoy RBAC policy name of rule i of a policy:
// "ns[<ns>]-policy[<name>]-rule[<i>]" (as Istio).
func PolicyName(namespace, name string, rule int) string {
	return "ns[" + namespace + "]-policy[" + name + "]-rule[" + strconv.Itoa(rule) + "]"
}

// rbacFilters returns the RBAC HTTP filters of a chain (issue5.md section 3): a DENY
// filter when a DENY policy applies and has rules, then an ALLOW filter when any ALLOW
// policy applies (with no rules it has no policies and so denies every request).
func rbacFilters(policies []l7.Policy) []*hcmv3.HttpFilter {
	var deny, allow map[string]*rbacv3.Policy
	var anyAllow bool
	for _, p := range policies {
		var dst *map[string]*rbacv3.Policy
		switch p.Action {
		case l7.ActionDeny:
			dst = &deny
		default: // ALLOW, and fail closed for anything else: it can only allow less
			dst, anyAllow = &allow, true
		}
		for i, r := range p.Rules {
			if *dst == nil {
				*dst = map[string]*rbacv3.Policy{}
			}
			(*dst)[PolicyName(p.Namespace, p.Name, i)] = rbacPolicy(r, p.Action == l7.ActionDeny)
		}
	}
	var out []*hcmv3.HttpFilter
	if len(deny) > 0 {
		out = append(out, waypointxds.HTTPFilter(waypointxds.FilterRBAC, &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: deny}}))
	}
	if anyAllow {
		out = append(out, waypointxds.HTTPFilter(waypointxds.FilterRBAC, &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: allow}}))
	}
	return out
}

// rbacPolicy maps one rule: permissions are one and_rules per `to` operation (each with
// every `when` condition), principals one and_ids per `from` source. Values a rule
// cannot express are made to deny more: in an ALLOW rule they never match, in a DENY
// rule they match anything (the fail-closed rule of issue5.md section 3).
func rbacPolicy(r l7.Rule, deny bool) *rbacv3.Policy {
	b := ruleBuilder{deny: deny}
	var when []*rbacv3.Permission
	for _, c := range r.When {
		when = append(when, b.condition(c))
	}
	p := &rbacv3.Policy{}
	for _, op := range r.To {
		p.Permissions = append(p.Permissions, andPermissions(append(b.operation(op), when...)))
	}
	if len(p.Permissions) == 0 {
		p.Permissions = []*rbacv3.Permission{andPermissions(when)}
	}
	for _, src := range r.From {
		p.Principals = append(p.Principals, andPrincipals(b.source(src)))
	}
	if len(p.Principals) == 0 {
		p.Principals = []*rbacv3.Principal{anyPrincipal()}
	}
	return p
}

type ruleBuilder struct{ deny bool }

// unsupported is what a value the rule cannot express matches: anything in a DENY rule,
// nothing in an ALLOW rule.
func (b ruleBuilder) unsupported() *rbacv3.Permission {
	if b.deny {
		return anyPermission()
	}
	return notPermission(anyPermission())
}

func (b ruleBuilder) operation(op l7.Operation) []*rbacv3.Permission {
	var out []*rbacv3.Permission
	field := func(values []string, not bool, one func(string) *rbacv3.Permission) {
		if len(values) == 0 {
			return
		}
		var alts []*rbacv3.Permission
		for _, v := range values {
			alts = append(alts, one(v))
		}
		p := orPermissions(alts)
		if not {
			p = notPermission(p)
		}
		out = append(out, p)
	}
	field(op.Hosts, false, hostPermission)
	field(op.NotHosts, true, hostPermission)
	field(op.Ports, false, b.portPermission)
	field(op.NotPorts, true, b.portPermission)
	field(op.Methods, false, func(v string) *rbacv3.Permission { return headerPermission(":method", v, false) })
	field(op.NotMethods, true, func(v string) *rbacv3.Permission { return headerPermission(":method", v, false) })
	field(op.Paths, false, pathPermission)
	field(op.NotPaths, true, pathPermission)
	return out
}

// condition maps a `when` on request.headers[<name>]; other keys are unsupported.
func (b ruleBuilder) condition(c l7.Condition) *rbacv3.Permission {
	rest, isHeader := strings.CutPrefix(c.Key, "request.headers[")
	name, closed := strings.CutSuffix(rest, "]")
	if !isHeader || !closed || name == "" || !validHeaderName(name) {
		return b.unsupported()
	}
	name = strings.ToLower(name)
	var parts []*rbacv3.Permission
	if len(c.Values) > 0 {
		var alts []*rbacv3.Permission
		for _, v := range c.Values {
			alts = append(alts, headerPermission(name, v, false))
		}
		parts = append(parts, orPermissions(alts))
	}
	if len(c.NotValues) > 0 {
		var alts []*rbacv3.Permission
		for _, v := range c.NotValues {
			alts = append(alts, headerPermission(name, v, false))
		}
		parts = append(parts, notPermission(orPermissions(alts)))
	}
	return andPermissions(parts)
}

func (b ruleBuilder) portPermission(v string) *rbacv3.Permission {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return b.unsupported()
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
}

func (b ruleBuilder) source(s l7.Source) []*rbacv3.Principal {
	var out []*rbacv3.Principal
	field := func(values []string, not bool, one func(string) *rbacv3.Principal) {
		if len(values) == 0 {
			return
		}
		var alts []*rbacv3.Principal
		for _, v := range values {
			alts = append(alts, one(v))
		}
		p := orPrincipals(alts)
		if not {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
		}
		out = append(out, p)
	}
	field(s.Principals, false, principalMatch)
	field(s.NotPrincipals, true, principalMatch)
	field(s.Namespaces, false, namespaceMatch)
	field(s.NotNamespaces, true, namespaceMatch)
	return out
}

// wildcard maps an Istio match value: "*" (nil: any non-empty value), "x*" prefix,
// "*x" suffix, else exact; add is prepended to the value (e.g. "spiffe://").
func wildcard(v, add string, ignoreCase bool) *matcherv3.StringMatcher {
	var m *matcherv3.StringMatcher
	switch {
	case v == "*":
		return nil
	case strings.HasSuffix(v, "*"):
		m = prefix(add + strings.TrimSuffix(v, "*"))
	case strings.HasPrefix(v, "*"):
		m = suffix(strings.TrimPrefix(v, "*"))
	default:
		m = exact(add + v)
	}
	m.IgnoreCase = ignoreCase
	return m
}

func principalMatch(v string) *rbacv3.Principal {
	m := wildcard(v, "spiffe://", false)
	if m == nil {
		m = prefix("spiffe://") // "*": any authenticated peer
	}
	return peerPrincipal(m)
}

func namespaceMatch(v string) *rbacv3.Principal {
	var ns string
	switch {
	case v == "*":
		ns = "[^/]+"
	case strings.HasSuffix(v, "*"):
		ns = regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + "[^/]*"
	case strings.HasPrefix(v, "*"):
		ns = "[^/]*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*"))
	default:
		ns = regexp.QuoteMeta(v)
	}
	return peerPrincipal(regex("^spiffe://[^/]+/ns/" + ns + "/sa/[^/]+$"))
}

func peerPrincipal(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
		Key:     waypointxds.FilterStatePeerPrincipal,
		Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: m},
	}}}
}

// hostPermission matches ":authority" case-insensitively, with or without a port for
// an exact host (as Istio's hosts).
func hostPermission(v string) *rbacv3.Permission {
	m := wildcard(v, "", true)
	if m == nil {
		return headerPresent(":authority")
	}
	if e := m.GetExact(); e != "" && !strings.Contains(e, ":") {
		withPort := prefix(e + ":")
		withPort.IgnoreCase = true
		return orPermissions([]*rbacv3.Permission{headerMatch(":authority", m), headerMatch(":authority", withPort)})
	}
	return headerMatch(":authority", m)
}

func headerPermission(name, v string, ignoreCase bool) *rbacv3.Permission {
	m := wildcard(v, "", ignoreCase)
	if m == nil {
		return headerPresent(name)
	}
	return headerMatch(name, m)
}

func headerMatch(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
	}}}
}

func headerPresent(name string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
	}}}
}

// pathPermission matches the path without its query: exact, "/p*" prefix, "*/s" suffix,
// "*" any.
func pathPermission(v string) *rbacv3.Permission {
	m := wildcard(v, "", false)
	if m == nil {
		return anyPermission()
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: m},
	}}}
}

func validHeaderName(n string) bool {
	for _, c := range n {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

func anyPrincipal() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func notPermission(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

// andPermissions is any for no rule, else and_rules (also for one rule: the shape of
// issue5.md section 3 is and_rules of or_rules).
func andPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 0 {
		return anyPermission()
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func andPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 0 {
		return anyPrincipal()
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func orPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}
