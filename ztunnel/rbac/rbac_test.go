package rbac

import (
	"errors"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

const (
	allow = security.Action_ALLOW
	deny  = security.Action_DENY

	global   = security.Scope_GLOBAL
	nsScope  = security.Scope_NAMESPACE
	selector = security.Scope_WORKLOAD_SELECTOR
)

func pol(ns, name string, scope security.Scope, action security.Action, groups ...*security.Group) *security.Authorization {
	return &security.Authorization{Name: name, Namespace: ns, Scope: scope, Action: action, Groups: groups}
}

func grp(rules ...*security.Rules) *security.Group { return &security.Group{Rules: rules} }

func rl(matches ...*security.Match) *security.Rules { return &security.Rules{Matches: matches} }

func exactSM(s string) *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: s}}
}

func prefixSM(s string) *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Prefix{Prefix: s}}
}

func suffixSM(s string) *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Suffix{Suffix: s}}
}

func presenceSM() *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}
}

func cidr(s string) *security.Address {
	p := netip.MustParsePrefix(s)
	return &security.Address{Address: p.Addr().AsSlice(), Length: uint32(p.Bits())}
}

// one wraps a single match into a one-group, one-rule policy body.
func one(m *security.Match) *security.Group { return grp(rl(m)) }

var (
	clientID = spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "client"}
	mtls     = Connection{SrcIdentity: clientID, SrcIP: netip.MustParseAddr("10.0.1.5"),
		DstIP: netip.MustParseAddr("10.0.2.7"), DstPort: 8080}
	plain = Connection{SrcIP: netip.MustParseAddr("10.0.1.5"), DstIP: netip.MustParseAddr("10.0.2.7"), DstPort: 8080}
	dest  = Destination{Namespace: "demo", Name: "server", Policies: []string{"demo/selected"}}

	strict   = pol("istio-system", "strict", global, deny, one(&security.Match{NotPrincipals: []*security.StringMatch{presenceSM()}}))
	allowAll = pol("demo", "allow-all", nsScope, allow, grp())
)

func TestEvaluate(t *testing.T) {
	type tc struct {
		name     string
		policies []*security.Authorization
		dst      Destination
		conn     Connection
		allow    bool
		policy   string // deciding policy key, checked when set
	}
	m := func(name string, action security.Action, match *security.Match) []*security.Authorization {
		return []*security.Authorization{pol("demo", name, nsScope, action, one(match))}
	}
	cases := []tc{
		{name: "no policies allow", conn: mtls, allow: true},
		{name: "allow-nothing denies", policies: []*security.Authorization{pol("demo", "nothing", nsScope, allow)}, conn: mtls, allow: false},
		{name: "allow-all allows", policies: []*security.Authorization{allowAll}, conn: mtls, allow: true, policy: "demo/allow-all"},
		{name: "deny-all denies", policies: []*security.Authorization{pol("demo", "deny-all", nsScope, deny, grp())}, conn: mtls, allow: false, policy: "demo/deny-all"},
		{name: "deny without groups never matches", policies: []*security.Authorization{pol("demo", "d", nsScope, deny)}, conn: mtls, allow: true},
		{name: "principal exact match", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{exactSM("cluster.local/ns/demo/sa/client")}}), conn: mtls, allow: true, policy: "demo/p"},
		{name: "principal exact mismatch", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{exactSM("cluster.local/ns/demo/sa/other")}}), conn: mtls, allow: false},
		{name: "principal with scheme never matches", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{exactSM("spiffe://cluster.local/ns/demo/sa/client")}}), conn: mtls, allow: false},
		{name: "principal prefix", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{prefixSM("cluster.local/ns/demo/")}}), conn: mtls, allow: true},
		{name: "principal suffix", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{suffixSM("/sa/client")}}), conn: mtls, allow: true},
		{name: "principal presence plaintext", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{presenceSM()}}), conn: plain, allow: false},
		{name: "principal presence mtls", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{presenceSM()}}), conn: mtls, allow: true},
		{name: "empty principal prefix needs an identity", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{prefixSM("")}}), conn: plain, allow: false},
		{name: "principal OR list", policies: m("p", allow, &security.Match{Principals: []*security.StringMatch{exactSM("x"), exactSM("cluster.local/ns/demo/sa/client")}}), conn: mtls, allow: true},
		{name: "strict denies plaintext", policies: []*security.Authorization{strict}, conn: plain, allow: false, policy: "istio-system/strict"},
		{name: "strict accepts mtls", policies: []*security.Authorization{strict}, conn: mtls, allow: true},
		{name: "strict overrides allow-all", policies: []*security.Authorization{strict, allowAll}, conn: plain, allow: false, policy: "istio-system/strict"},
		{name: "namespace exact", policies: m("n", allow, &security.Match{Namespaces: []*security.StringMatch{exactSM("demo")}}), conn: mtls, allow: true},
		{name: "namespace mismatch", policies: m("n", allow, &security.Match{Namespaces: []*security.StringMatch{exactSM("other")}}), conn: mtls, allow: false},
		{name: "not_namespaces other", policies: m("n", allow, &security.Match{NotNamespaces: []*security.StringMatch{exactSM("other")}}), conn: mtls, allow: true},
		{name: "not_namespaces own", policies: m("n", allow, &security.Match{NotNamespaces: []*security.StringMatch{exactSM("demo")}}), conn: mtls, allow: false},
		{name: "namespace needs identity", policies: m("n", allow, &security.Match{Namespaces: []*security.StringMatch{presenceSM()}}), conn: plain, allow: false},
		{name: "deny not_namespaces catches plaintext", policies: m("n", deny, &security.Match{NotNamespaces: []*security.StringMatch{exactSM("demo")}}), conn: plain, allow: false},
		{name: "service account match", policies: m("s", allow, &security.Match{ServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "demo", ServiceAccount: "client"}}}), conn: mtls, allow: true},
		{name: "service account other sa", policies: m("s", allow, &security.Match{ServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "demo", ServiceAccount: "other"}}}), conn: mtls, allow: false},
		{name: "service account other namespace", policies: m("s", allow, &security.Match{ServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "other", ServiceAccount: "client"}}}), conn: mtls, allow: false},
		{name: "service account plaintext", policies: m("s", allow, &security.Match{ServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "demo", ServiceAccount: "client"}}}), conn: plain, allow: false},
		{name: "deny not_service_accounts spares it", policies: m("s", deny, &security.Match{NotServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "demo", ServiceAccount: "client"}}}), conn: mtls, allow: true},
		{name: "source ip in block", policies: m("ip", allow, &security.Match{SourceIps: []*security.Address{cidr("10.0.1.0/24")}}), conn: plain, allow: true},
		{name: "source ip outside block", policies: m("ip", allow, &security.Match{SourceIps: []*security.Address{cidr("10.0.9.0/24")}}), conn: plain, allow: false},
		{name: "not_source_ips exact host", policies: m("ip", allow, &security.Match{NotSourceIps: []*security.Address{cidr("10.0.1.5/32")}}), conn: plain, allow: false},
		{name: "source block with host bits set", policies: m("ip", allow, &security.Match{SourceIps: []*security.Address{{Address: netip.MustParseAddr("10.0.1.99").AsSlice(), Length: 24}}}), conn: plain, allow: true},
		{name: "zero-length v4 block matches any v4", policies: m("ip", allow, &security.Match{SourceIps: []*security.Address{cidr("0.0.0.0/0")}}), conn: plain, allow: true},
		{name: "v6 block never matches v4", policies: m("ip", allow, &security.Match{SourceIps: []*security.Address{cidr("::/0")}}), conn: plain, allow: false},
		{name: "destination ip", policies: m("ip", allow, &security.Match{DestinationIps: []*security.Address{cidr("10.0.2.7/32")}}), conn: mtls, allow: true},
		{name: "not_destination_ips", policies: m("ip", allow, &security.Match{NotDestinationIps: []*security.Address{cidr("10.0.0.0/8")}}), conn: mtls, allow: false},
		{name: "destination ports OR", policies: m("port", allow, &security.Match{DestinationPorts: []uint32{80, 8080}}), conn: mtls, allow: true},
		{name: "destination port mismatch", policies: m("port", allow, &security.Match{DestinationPorts: []uint32{80}}), conn: mtls, allow: false},
		{name: "deny not_destination_ports spares it", policies: m("port", deny, &security.Match{NotDestinationPorts: []uint32{8080}}), conn: mtls, allow: true},
		{name: "deny destination port", policies: m("port", deny, &security.Match{DestinationPorts: []uint32{8080}}), conn: mtls, allow: false, policy: "demo/port"},
		{name: "fields of a match are AND-ed", policies: m("and", allow, &security.Match{
			Principals: []*security.StringMatch{presenceSM()}, DestinationPorts: []uint32{80}}), conn: mtls, allow: false},
		{name: "matches of a rule are OR-ed", policies: []*security.Authorization{pol("demo", "or", nsScope, allow, grp(rl(
			&security.Match{DestinationPorts: []uint32{80}},
			&security.Match{Namespaces: []*security.StringMatch{exactSM("demo")}})))}, conn: mtls, allow: true},
		{name: "rules of a group are AND-ed", policies: []*security.Authorization{pol("demo", "and", nsScope, allow, grp(
			rl(&security.Match{Namespaces: []*security.StringMatch{exactSM("demo")}}),
			rl(&security.Match{DestinationPorts: []uint32{80}})))}, conn: mtls, allow: false},
		{name: "groups are OR-ed", policies: []*security.Authorization{pol("demo", "or", nsScope, allow,
			one(&security.Match{DestinationPorts: []uint32{80}}),
			one(&security.Match{DestinationPorts: []uint32{8080}}))}, conn: mtls, allow: true},
		{name: "empty match never matches", policies: []*security.Authorization{pol("demo", "e", nsScope, allow, grp(rl(&security.Match{})))}, conn: mtls, allow: false},
		{name: "empty match beside a matching one", policies: []*security.Authorization{pol("demo", "e", nsScope, allow, grp(rl(&security.Match{},
			&security.Match{DestinationPorts: []uint32{8080}})))}, conn: mtls, allow: true},
		{name: "rule without matches matches", policies: []*security.Authorization{pol("demo", "r", nsScope, allow, grp(rl(),
			rl(&security.Match{DestinationPorts: []uint32{8080}})))}, conn: mtls, allow: true},
		{name: "deny wins over allow", policies: []*security.Authorization{allowAll,
			pol("demo", "no-client", nsScope, deny, one(&security.Match{Principals: []*security.StringMatch{suffixSM("/sa/client")}}))},
			conn: mtls, allow: false, policy: "demo/no-client"},
		{name: "one of two allows matches", policies: []*security.Authorization{
			pol("demo", "a1", nsScope, allow, one(&security.Match{DestinationPorts: []uint32{80}})),
			pol("demo", "a2", nsScope, allow, one(&security.Match{DestinationPorts: []uint32{8080}}))},
			conn: mtls, allow: true, policy: "demo/a2"},
		{name: "selector policy not named does not apply", policies: []*security.Authorization{pol("demo", "other-wl", selector, allow)}, dst: dest, conn: mtls, allow: true},
		{name: "selector policy named applies", policies: []*security.Authorization{pol("demo", "selected", selector, allow)}, dst: dest, conn: mtls, allow: false},
		{name: "named policy not yet received is skipped", dst: dest, conn: mtls, allow: true},
		{name: "other namespace's policy does not apply", policies: []*security.Authorization{pol("other", "nothing", nsScope, allow)}, conn: mtls, allow: true},
		{name: "global policy applies everywhere", policies: []*security.Authorization{pol("istio-system", "nothing", global, allow)}, conn: mtls, allow: false},
		{name: "namespace policy also named applies once", policies: []*security.Authorization{pol("demo", "selected", nsScope, allow, grp())},
			dst: Destination{Namespace: "demo", Policies: []string{"demo/selected", "demo/selected"}}, conn: mtls, allow: true, policy: "demo/selected"},
		{name: "dry-run deny not enforced", policies: []*security.Authorization{{Name: "d", Namespace: "demo", Scope: nsScope, Action: deny, DryRun: true, Groups: []*security.Group{grp()}}}, conn: mtls, allow: true},
		{name: "dry-run allow does not make allow-list", policies: []*security.Authorization{{Name: "a", Namespace: "demo", Scope: nsScope, Action: allow, DryRun: true}}, conn: mtls, allow: true},
		{name: "bad address in allow never matches", policies: m("bad", allow, &security.Match{SourceIps: []*security.Address{{Address: []byte{1, 2, 3}, Length: 8}}}), conn: mtls, allow: false},
		{name: "bad prefix length in allow never matches", policies: m("bad", allow, &security.Match{NotSourceIps: []*security.Address{{Address: []byte{10, 0, 0, 0}, Length: 33}}}), conn: mtls, allow: false},
		{name: "bad address in deny matches", policies: m("bad", deny, &security.Match{SourceIps: []*security.Address{{Address: []byte{1, 2, 3}, Length: 8}}}), conn: mtls, allow: false, policy: "demo/bad"},
		{name: "bad port in deny matches", policies: m("bad", deny, &security.Match{NotDestinationPorts: []uint32{70000}}), conn: mtls, allow: false},
		{name: "string match without kind in allow never matches", policies: m("bad", allow, &security.Match{Principals: []*security.StringMatch{{}}}), conn: mtls, allow: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Policy
			for _, a := range tc.policies {
				p, err := Compile(a.Namespace+"/"+a.Name, a)
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			dst := tc.dst
			if dst.Namespace == "" {
				dst.Namespace = "demo"
			}
			d := NewSet(ps).Evaluate(dst, tc.conn)
			if d.Allow != tc.allow || (tc.policy != "" && d.Policy != tc.policy) {
				t.Fatalf("decision = %+v, want allow=%v policy=%q", d, tc.allow, tc.policy)
			}
		})
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
}

func TestCompileRejects(t *testing.T) {
	for name, a := range map[string]*security.Authorization{
		"nil":                    nil,
		"unknown scope":          {Name: "x", Namespace: "demo", Scope: 7},
		"unknown action":         {Name: "x", Namespace: "demo", Action: 3},
		"namespace scope, no ns": {Name: "x", Scope: nsScope},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile("demo/x", a); !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
		})
	}
}

func TestSetIndex(t *testing.T) {
	a, _ := Compile("demo/a", pol("demo", "a", nsScope, allow))
	a2, _ := Compile("demo/a", pol("demo", "a", nsScope, deny))
	b, _ := Compile("istio-system/b", pol("istio-system", "b", global, deny))
	s := NewSet([]*Policy{a, b, a2, nil})
	if s.Len() != 2 || s.Get("demo/a") != a2 || s.Policies()[0].Key != "demo/a" {
		t.Fatalf("set = %v", s.Policies())
	}
	var empty *Set
	if d := empty.Evaluate(dest, mtls); !d.Allow || empty.Len() != 0 || empty.Get("x") != nil {
		t.Fatalf("nil set: %+v", d)
	}
}
