package envoy

import (
	"maps"
	"slices"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

func TestPrincipalMatchers(t *testing.T) {
	fs := func(m string) string {
		return `{"filter_state":{"key":"io.istio.peer_principal","string_match":` + m + `}}`
	}
	tests := []struct {
		name string
		got  *rbacv3.Principal
		want string
	}{
		{"exact principal", principalMatch("cluster.local/ns/a/sa/b"), fs(`{"exact":"spiffe://cluster.local/ns/a/sa/b"}`)},
		{"prefix principal", principalMatch("cluster.local/ns/a/*"), fs(`{"prefix":"spiffe://cluster.local/ns/a/"}`)},
		{"suffix principal", principalMatch("*/sa/b"), fs(`{"suffix":"/sa/b"}`)},
		{"any principal", principalMatch("*"), fs(`{"prefix":"spiffe://"}`)},
		{"namespace", namespaceMatch("a.b"), fs(`{"safe_regex":{"regex":"^spiffe://[^/]+/ns/a\\.b/sa/[^/]+$"}}`)},
		{"namespace prefix", namespaceMatch("team-*"), fs(`{"safe_regex":{"regex":"^spiffe://[^/]+/ns/team-[^/]*/sa/[^/]+$"}}`)},
		{"namespace suffix", namespaceMatch("*-prod"), fs(`{"safe_regex":{"regex":"^spiffe://[^/]+/ns/[^/]*-prod/sa/[^/]+$"}}`)},
		{"any namespace", namespaceMatch("*"), fs(`{"safe_regex":{"regex":"^spiffe://[^/]+/ns/[^/]+/sa/[^/]+$"}}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s := compact(t, tc.got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestPermissionMatchers(t *testing.T) {
	allow, deny := ruleBuilder{}, ruleBuilder{deny: true}
	tests := []struct {
		name string
		got  *rbacv3.Permission
		want string
	}{
		{"exact path", pathPermission("/admin"), `{"url_path":{"path":{"exact":"/admin"}}}`},
		{"prefix path", pathPermission("/api/*"), `{"url_path":{"path":{"prefix":"/api/"}}}`},
		{"suffix path", pathPermission("*.png"), `{"url_path":{"path":{"suffix":".png"}}}`},
		{"any path", pathPermission("*"), `{"any":true}`},
		{"method", headerPermission(":method", "POST", false), `{"header":{"name":":method","string_match":{"exact":"POST"}}}`},
		{"exact host", hostPermission("example.com"), `{"or_rules":{"rules":[` +
			`{"header":{"name":":authority","string_match":{"exact":"example.com","ignore_case":true}}},` +
			`{"header":{"name":":authority","string_match":{"prefix":"example.com:","ignore_case":true}}}]}}`},
		{"wildcard host", hostPermission("*.example.com"), `{"header":{"name":":authority","string_match":{"suffix":".example.com","ignore_case":true}}}`},
		{"any host", hostPermission("*"), `{"header":{"name":":authority","present_match":true}}`},
		{"port", allow.portPermission("8080"), `{"destination_port":8080}`},
		{"bad port in allow never matches", allow.portPermission("http"), `{"not_rule":{"any":true}}`},
		{"bad port in deny matches", deny.portPermission("0"), `{"any":true}`},
		{"when header", allow.condition(l7.Condition{Key: "request.headers[X-Token]", Values: []string{"a"}, NotValues: []string{"b"}}),
			`{"and_rules":{"rules":[{"or_rules":{"rules":[{"header":{"name":"x-token","string_match":{"exact":"a"}}}]}},` +
				`{"not_rule":{"or_rules":{"rules":[{"header":{"name":"x-token","string_match":{"exact":"b"}}}]}}}]}}`},
		{"unknown when key in allow", allow.condition(l7.Condition{Key: "request.auth.claims[iss]", Values: []string{"x"}}), `{"not_rule":{"any":true}}`},
		{"unknown when key in deny", deny.condition(l7.Condition{Key: "source.ip", Values: []string{"x"}}), `{"any":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s := compact(t, tc.got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestRBACPolicy(t *testing.T) {
	rule := l7.Rule{
		From: []l7.Source{{Principals: []string{"cluster.local/ns/a/sa/b"}, NotNamespaces: []string{"c"}}},
		To:   []l7.Operation{{Methods: []string{"GET"}}, {Paths: []string{"/x"}}},
		When: []l7.Condition{{Key: "request.headers[x-a]", Values: []string{"1"}}},
	}
	p := rbacPolicy(rule, false)
	want := `{"permissions":[` +
		`{"and_rules":{"rules":[{"or_rules":{"rules":[{"header":{"name":":method","string_match":{"exact":"GET"}}}]}},` +
		`{"and_rules":{"rules":[{"or_rules":{"rules":[{"header":{"name":"x-a","string_match":{"exact":"1"}}}]}}]}}]}},` +
		`{"and_rules":{"rules":[{"or_rules":{"rules":[{"url_path":{"path":{"exact":"/x"}}}]}},` +
		`{"and_rules":{"rules":[{"or_rules":{"rules":[{"header":{"name":"x-a","string_match":{"exact":"1"}}}]}}]}}]}}],` +
		`"principals":[{"and_ids":{"ids":[` +
		`{"or_ids":{"ids":[{"filter_state":{"key":"io.istio.peer_principal","string_match":{"exact":"spiffe://cluster.local/ns/a/sa/b"}}}]}},` +
		`{"not_id":{"or_ids":{"ids":[{"filter_state":{"key":"io.istio.peer_principal","string_match":{"safe_regex":{"regex":"^spiffe://[^/]+/ns/c/sa/[^/]+$"}}}}]}}}]}}]}`
	if s := compact(t, p); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
	if s := compact(t, rbacPolicy(l7.Rule{}, true)); s != `{"permissions":[{"any":true}],"principals":[{"any":true}]}` {
		t.Errorf("empty rule: %s", s)
	}
}

func TestRBACFilters(t *testing.T) {
	allowNS := l7.Policy{Namespace: "ns", Name: "allow", Action: l7.ActionAllow, Rules: []l7.Rule{{}}}
	allowNothing := l7.Policy{Namespace: "ns", Name: "nothing", Action: l7.ActionAllow}
	deny := l7.Policy{Namespace: "ns", Name: "deny", Action: l7.ActionDeny, Rules: []l7.Rule{{}, {}}}
	denyNothing := l7.Policy{Namespace: "ns", Name: "deny-none", Action: l7.ActionDeny}
	tests := []struct {
		name     string
		policies []l7.Policy
		want     []string // per filter: action and policy names
	}{
		{"none", nil, nil},
		{"deny then allow", []l7.Policy{allowNS, deny}, []string{
			"DENY ns[ns]-policy[deny]-rule[0] ns[ns]-policy[deny]-rule[1]", "ALLOW ns[ns]-policy[allow]-rule[0]"}},
		{"allow without rules denies all", []l7.Policy{allowNothing}, []string{"ALLOW"}},
		{"deny without rules is no filter", []l7.Policy{denyNothing}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			filters := rbacFilters(tc.policies)
			var got []string
			for _, f := range filters {
				if f.GetName() != waypointxds.FilterRBAC {
					t.Fatalf("filter %q", f.GetName())
				}
				r := &rbacfilterv3.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
					t.Fatal(err)
				}
				s := r.GetRules().GetAction().String()
				for _, name := range sortedKeys(r.GetRules().GetPolicies()) {
					s += " " + name
				}
				got = append(got, s)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("filter %d: got %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
