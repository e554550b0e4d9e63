package authz

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func prefix(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func method(m string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)}}}}
}

func path(sm *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: sm}}}}
}

func and(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func or(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func not(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func anyPrincipal() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func peer(sm *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
		Key: PeerPrincipalKey, Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: sm}}}}
}

func filter(action rbacv3.RBAC_Action, policies map[string]*rbacv3.Policy) *rbacv3filter.RBAC {
	return &rbacv3filter.RBAC{Rules: &rbacv3.RBAC{Action: action, Policies: policies}}
}

func TestAllowed(t *testing.T) {
	nsRegex := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: "^spiffe://[^/]+/ns/prod/sa/[^/]+$"}}}
	deny := filter(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"ns[app]-policy[deny-admin]-rule[0]": {
			Permissions: []*rbacv3.Permission{and(or(method("POST")), or(path(prefix("/admin"))))},
			Principals:  []*rbacv3.Principal{anyPrincipal()},
		},
	})
	allow := filter(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"ns[app]-policy[from-prod]-rule[0]": {
			Permissions: []*rbacv3.Permission{and(not(method("DELETE")),
				or(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 8080}}))},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{
				Ids: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{
					Ids: []*rbacv3.Principal{peer(nsRegex), peer(exact("spiffe://cluster.local/ns/dev/sa/ci"))}}}}}}}}},
		},
		"ns[app]-policy[header]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name: "x-token", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: anyPrincipal()}}},
		},
	})
	denyAll := filter(rbacv3.RBAC_ALLOW, nil)
	prodPeer := "spiffe://cluster.local/ns/prod/sa/web"
	tests := []struct {
		name   string
		f      *rbacv3filter.RBAC
		req    Request
		wantOK bool
	}{
		{name: "deny matches POST /admin", f: deny, req: Request{Method: "POST", Path: "/admin/users"}, wantOK: false},
		{name: "deny ignores query", f: deny, req: Request{Method: "POST", Path: "/admin?x=1"}, wantOK: false},
		{name: "deny passes GET /admin", f: deny, req: Request{Method: "GET", Path: "/admin"}, wantOK: true},
		{name: "deny passes POST /", f: deny, req: Request{Method: "POST", Path: "/"}, wantOK: true},
		{name: "allow prod peer", f: allow, req: Request{Method: "GET", Path: "/", DestinationPort: 8080, PeerPrincipal: prodPeer}, wantOK: true},
		{name: "allow exact dev peer", f: allow, req: Request{Method: "GET", DestinationPort: 8080,
			PeerPrincipal: "spiffe://cluster.local/ns/dev/sa/ci"}, wantOK: true},
		{name: "other namespace denied", f: allow, req: Request{Method: "GET", DestinationPort: 8080,
			PeerPrincipal: "spiffe://cluster.local/ns/dev/sa/web"}, wantOK: false},
		{name: "no peer denied", f: allow, req: Request{Method: "GET", DestinationPort: 8080}, wantOK: false},
		{name: "not_rule DELETE", f: allow, req: Request{Method: "DELETE", DestinationPort: 8080, PeerPrincipal: prodPeer}, wantOK: false},
		{name: "wrong port", f: allow, req: Request{Method: "GET", DestinationPort: 9090, PeerPrincipal: prodPeer}, wantOK: false},
		{name: "not_id any never matches", f: allow, req: Request{Headers: http.Header{"X-Token": {"t"}}}, wantOK: false},
		{name: "empty allow denies all", f: denyAll, req: Request{Method: "GET", Path: "/"}, wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Compile(tc.f)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			req := tc.req
			if got := f.Allowed(&req); got != tc.wantOK {
				t.Fatalf("Allowed = %v, want %v", got, tc.wantOK)
			}
		})
	}
}

func TestHostHeader(t *testing.T) {
	f, err := Compile(filter(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":authority",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".example.com"}, IgnoreCase: true}}}}}},
		Principals: []*rbacv3.Principal{anyPrincipal()},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Allowed(&Request{Host: "API.Example.COM"}) || f.Allowed(&Request{Host: "example.org"}) {
		t.Fatal(":authority suffix match wrong")
	}
}

func TestNilAndNoRules(t *testing.T) {
	var nilFilter *Filter
	if !nilFilter.Allowed(&Request{}) {
		t.Fatal("nil filter denied")
	}
	f, err := Compile(&rbacv3filter.RBAC{})
	if err != nil || f != nil {
		t.Fatalf("no rules: %v, %v", f, err)
	}
	g, _ := Compile(filter(rbacv3.RBAC_DENY, nil))
	if g.Allowed(nil) {
		t.Fatal("nil request allowed")
	}
}

func TestCompileRejects(t *testing.T) {
	policy := func(perm *rbacv3.Permission, pr *rbacv3.Principal) *rbacv3filter.RBAC {
		return filter(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{pr}}})
	}
	anyPerm := &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	tests := []struct {
		name        string
		in          *rbacv3filter.RBAC
		want        string
		unsupported bool
	}{
		{name: "shadow rules", in: &rbacv3filter.RBAC{ShadowRules: &rbacv3.RBAC{}}, want: "shadow_rules", unsupported: true},
		{name: "log action", in: filter(rbacv3.RBAC_LOG, nil), want: "rules.action LOG", unsupported: true},
		{name: "source ip", in: policy(anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0"}}}),
			want: "direct_remote_ip", unsupported: true},
		{name: "authenticated", in: policy(anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{}}}),
			want: "authenticated", unsupported: true},
		{name: "destination ip", in: policy(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0"}}}, anyPrincipal()),
			want: "destination_ip", unsupported: true},
		{name: "other filter state key", in: policy(anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{
			FilterState: &matcherv3.FilterStateMatcher{Key: "other", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: exact("a")}}}}),
			want: `filter_state.key "other"`, unsupported: true},
		{name: "any false", in: policy(&rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: false}}, anyPrincipal()), want: "any must be true"},
		{name: "empty permission", in: policy(&rbacv3.Permission{}, anyPrincipal()), want: "a rule is required"},
		{name: "empty and", in: policy(and(), anyPrincipal()), want: "and_rules"},
		{name: "no principals", in: filter(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm}}}),
			want: "non-empty"},
		{name: "bad regex", in: policy(path(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "["}}}), anyPrincipal()), want: "safe_regex"},
		{name: "empty prefix", in: policy(path(prefix("")), anyPrincipal()), want: "empty prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Compile(tc.in)
			if err == nil {
				t.Fatalf("Compile = %+v, want error", f)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("ErrUnsupported = %v, want %v: %v", !tc.unsupported, tc.unsupported, err)
			}
		})
	}
}

func TestDeepNestingRejected(t *testing.T) {
	p := &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	for i := 0; i < maxDepth+2; i++ {
		p = not(p)
	}
	_, err := Compile(filter(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{p}, Principals: []*rbacv3.Principal{anyPrincipal()}}}))
	if err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzCompile(f *testing.F) {
	seed, _ := proto.Marshal(filter(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{and(or(method("POST")), not(path(prefix("/admin"))))},
		Principals:  []*rbacv3.Principal{peer(exact("spiffe://td/ns/a/sa/b"))},
	}}))
	f.Add(seed, "POST", "/admin?x", "spiffe://td/ns/a/sa/b")
	f.Fuzz(func(t *testing.T, data []byte, m, p, principal string) {
		var in rbacv3filter.RBAC
		if proto.Unmarshal(data, &in) != nil {
			return
		}
		flt, err := Compile(&in)
		if err != nil {
			return
		}
		flt.Allowed(&Request{Method: m, Path: p, Host: p, PeerPrincipal: principal, DestinationPort: uint32(len(p)),
			Headers: http.Header{"X-A": {m}}})
	})
}
