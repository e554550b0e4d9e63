package authz

import (
	"fmt"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
	"github.com/ambitmesh/ambit/waypoint/route"
)

// allowed is the implemented subset of the RBAC filter (issue 5, section 3).
var allowed = &protoshape.AllowList{Fields: protoshape.Fields{
	"envoy.extensions.filters.http.rbac.v3.RBAC": {"rules"},
	"envoy.config.rbac.v3.RBAC":                  {"action", "policies"},
	"envoy.config.rbac.v3.Policy":                {"permissions", "principals"},
	"envoy.config.rbac.v3.Permission": {"any", "and_rules", "or_rules", "not_rule", "header",
		"url_path", "destination_port"},
	"envoy.config.rbac.v3.Permission.Set":      {"rules"},
	"envoy.config.rbac.v3.Principal":           {"any", "and_ids", "or_ids", "not_id", "filter_state"},
	"envoy.config.rbac.v3.Principal.Set":       {"ids"},
	"envoy.config.route.v3.HeaderMatcher":      {"name", "string_match", "present_match", "invert_match"},
	"envoy.type.matcher.v3.PathMatcher":        {"path"},
	"envoy.type.matcher.v3.FilterStateMatcher": {"key", "string_match"},
	"envoy.type.matcher.v3.StringMatcher":      {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"},
	"envoy.type.matcher.v3.RegexMatcher":       {"regex"},
}}

// maxDepth bounds nesting of and/or/not rules (a hostile config cannot
// exhaust the stack).
const maxDepth = 64

// policy is one named policy: it matches when some permission and some
// principal match.
type policy struct {
	name        string
	permissions []node
	principals  []node
}

func (p *policy) matches(req *Request) bool {
	return anyMatch(p.permissions, req) && anyMatch(p.principals, req)
}

// node is a compiled permission or principal.
type node interface {
	match(req *Request) bool
}

type (
	anyNode  struct{}
	andNode  []node
	orNode   []node
	notNode  struct{ n node }
	portNode uint32
	pathNode struct{ m *route.StringMatch }
	hdrNode  struct{ m *route.HeaderMatch }
	peerNode struct{ m *route.StringMatch }
)

func (anyNode) match(*Request) bool      { return true }
func (a andNode) match(r *Request) bool  { return allMatch(a, r) }
func (o orNode) match(r *Request) bool   { return anyMatch(o, r) }
func (n notNode) match(r *Request) bool  { return !n.n.match(r) }
func (p portNode) match(r *Request) bool { return r.DestinationPort == uint32(p) }
func (p pathNode) match(r *Request) bool { return p.m.Match(urlPath(r.Path)) }
func (p peerNode) match(r *Request) bool { return r.PeerPrincipal != "" && p.m.Match(r.PeerPrincipal) }
func (h hdrNode) match(r *Request) bool {
	v, ok := header(r, h.m.Name, h.m.Key())
	return h.m.Match(v, ok)
}

func anyMatch(ns []node, r *Request) bool {
	for _, n := range ns {
		if n.match(r) {
			return true
		}
	}
	return false
}

func allMatch(ns []node, r *Request) bool {
	for _, n := range ns {
		if !n.match(r) {
			return false
		}
	}
	return true
}

func compile(r *rbacv3filter.RBAC) (*Filter, error) {
	if r == nil {
		return nil, nil
	}
	if err := allowed.Check(r, ""); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	rules := r.GetRules()
	if rules == nil {
		return nil, nil // Envoy: no rules, no enforcement
	}
	f := &Filter{}
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
	case rbacv3.RBAC_DENY:
		f.deny = true
	default:
		return nil, fmt.Errorf("rbac: %w rules.action %s", ErrUnsupported, rules.GetAction())
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := compilePolicy(name, rules.GetPolicies()[name])
		if err != nil {
			return nil, fmt.Errorf("rbac policy %q: %w", name, err)
		}
		f.policies = append(f.policies, p)
	}
	return f, nil
}

func compilePolicy(name string, p *rbacv3.Policy) (policy, error) {
	out := policy{name: name}
	for i, perm := range p.GetPermissions() {
		n, err := compilePermission(perm, 0)
		if err != nil {
			return policy{}, fmt.Errorf("permissions[%d]: %w", i, err)
		}
		out.permissions = append(out.permissions, n)
	}
	for i, pr := range p.GetPrincipals() {
		n, err := compilePrincipal(pr, 0)
		if err != nil {
			return policy{}, fmt.Errorf("principals[%d]: %w", i, err)
		}
		out.principals = append(out.principals, n)
	}
	if len(out.permissions) == 0 || len(out.principals) == 0 {
		return policy{}, fmt.Errorf("permissions and principals must both be non-empty")
	}
	return out, nil
}

func compilePermission(p *rbacv3.Permission, depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("rules nested deeper than %d", maxDepth)
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("any must be true")
		}
		return anyNode{}, nil
	case *rbacv3.Permission_AndRules:
		return compilePermissions(r.AndRules.GetRules(), depth, "and_rules", func(ns []node) node { return andNode(ns) })
	case *rbacv3.Permission_OrRules:
		return compilePermissions(r.OrRules.GetRules(), depth, "or_rules", func(ns []node) node { return orNode(ns) })
	case *rbacv3.Permission_NotRule:
		n, err := compilePermission(r.NotRule, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not_rule: %w", err)
		}
		return notNode{n}, nil
	case *rbacv3.Permission_Header:
		m, err := route.CompileHeaderMatch(r.Header)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		return hdrNode{m}, nil
	case *rbacv3.Permission_UrlPath:
		m, err := route.CompileStringMatch(r.UrlPath.GetPath())
		if err != nil {
			return nil, fmt.Errorf("url_path: %w", err)
		}
		return pathNode{m}, nil
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return nil, fmt.Errorf("destination_port %d: out of range", r.DestinationPort)
		}
		return portNode(r.DestinationPort), nil
	}
	return nil, fmt.Errorf("permission: a rule is required")
}

func compilePermissions(ps []*rbacv3.Permission, depth int, field string, mk func([]node) node) (node, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: rules must be non-empty", field)
	}
	ns := make([]node, 0, len(ps))
	for i, p := range ps {
		n, err := compilePermission(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		ns = append(ns, n)
	}
	return mk(ns), nil
}

func compilePrincipal(p *rbacv3.Principal, depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("ids nested deeper than %d", maxDepth)
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fmt.Errorf("any must be true")
		}
		return anyNode{}, nil
	case *rbacv3.Principal_AndIds:
		return compilePrincipals(id.AndIds.GetIds(), depth, "and_ids", func(ns []node) node { return andNode(ns) })
	case *rbacv3.Principal_OrIds:
		return compilePrincipals(id.OrIds.GetIds(), depth, "or_ids", func(ns []node) node { return orNode(ns) })
	case *rbacv3.Principal_NotId:
		n, err := compilePrincipal(id.NotId, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return notNode{n}, nil
	case *rbacv3.Principal_FilterState:
		if id.FilterState.GetKey() != PeerPrincipalKey {
			return nil, fmt.Errorf("%w filter_state.key %q (only %q)", ErrUnsupported, id.FilterState.GetKey(), PeerPrincipalKey)
		}
		m, err := route.CompileStringMatch(id.FilterState.GetStringMatch())
		if err != nil {
			return nil, fmt.Errorf("filter_state.string_match: %w", err)
		}
		return peerNode{m}, nil
	}
	return nil, fmt.Errorf("principal: an identifier is required")
}

func compilePrincipals(ps []*rbacv3.Principal, depth int, field string, mk func([]node) node) (node, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: ids must be non-empty", field)
	}
	ns := make([]node, 0, len(ps))
	for i, p := range ps {
		n, err := compilePrincipal(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		ns = append(ns, n)
	}
	return mk(ns), nil
}

// urlPath is the path of a request target without query or fragment, as
// Envoy's url_path matcher sees it.
func urlPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// header returns a request header by lower-case name (key: its canonical form),
// with Envoy's pseudo-headers; several values are joined with ",".
func header(r *Request, name, key string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, r.Method != ""
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":path":
		return r.Path, r.Path != ""
	}
	vals := r.Headers[key]
	if len(vals) == 0 {
		return "", false
	}
	return strings.Join(vals, ","), true
}
