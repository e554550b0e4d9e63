package policy

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi/security"
	"sigs.k8s.io/yaml"
)

// sampleConns is a spread of connections the properties are checked on.
var sampleConns = func() []conn {
	var out []conn
	for _, id := range []string{"", "spiffe://cluster.local/ns/sleep/sa/sleep", "spiffe://cluster.local/ns/shop/sa/db",
		"spiffe://td/ns/evil/sa/x"} {
		for _, src := range []string{"10.1.0.5", "10.1.2.3", "fd00::1"} {
			for _, dst := range []string{"10.244.0.10:8080", "10.244.0.10:22", "[fd00::10]:9090"} {
				out = append(out, conn{id: id, src: netip.MustParseAddr(src), dst: netip.MustParseAddrPort(dst)})
			}
		}
	}
	return out
}()

// FuzzAuthorizationPolicy feeds arbitrary YAML through the conversion: it never panics,
// is deterministic, never emits an empty Match or a malformed address or port, and fails
// closed: an invalid policy allows nothing (ALLOW) or denies everything (DENY); adding
// HTTP attributes to a valid policy never makes a DENY match less or an ALLOW match
// more; and adding an invalid rule makes the policy fail closed.
func FuzzAuthorizationPolicy(f *testing.F) {
	for _, seed := range []string{
		`{selector: {matchLabels: {app: web}}, rules: [{from: [{source: {principals: ["cluster.local/ns/sleep/*"], notNamespaces: [evil]}}]}]}`,
		`{action: DENY, rules: [{to: [{operation: {ports: ["8080"], methods: [GET]}}], when: [{key: source.ip, notValues: [10.1.0.0/16]}]}]}`,
		`{action: DENY, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}, {}]}`,
		`{rules: [{from: [{source: {ipBlocks: ["fd00::/8"], serviceAccounts: [shop/db]}}], to: [{operation: {notPorts: ["22"]}}]}]}`,
		`{rules: [{when: [{key: destination.port, values: ["8080"]}, {key: "request.headers[a]", values: [b]}]}]}`,
		`{action: DENY, rules: [{from: [{source: {ipBlocks: [10.1.0.0/33]}}]}]}`,
		`{action: AUDIT, rules: [{}]}`,
		`{targetRefs: [{kind: Service, name: x}], rules: [{}]}`,
		`{selector: {matchLabels: {"": x}}, action: DENY}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ap := &securityv1.AuthorizationPolicy{}
		if err := yaml.Unmarshal([]byte(`{"metadata": {"name": "p", "namespace": "shop"}, "spec": `+spec+`}`), ap); err != nil {
			return
		}
		checkAuthorizationProperties(t, ap)
	})
}

func checkAuthorizationProperties(t *testing.T, ap *securityv1.AuthorizationPolicy) {
	a, problems := ConvertAuthorizationPolicy(ap, Options{})
	b, problems2 := ConvertAuthorizationPolicy(ap, Options{})
	if !proto.Equal(a, b) || len(problems) != len(problems2) {
		t.Fatalf("not deterministic: %v vs %v", a, b)
	}
	if a == nil {
		return
	}
	checkWellFormed(t, a)
	invalid := false
	for _, p := range problems {
		invalid = invalid || p.Invalid
	}
	if invalid {
		checkFailsClosed(t, a, "invalid policy")
		return
	}

	withHTTP := ap.DeepCopy()
	addHTTPAttributes(&withHTTP.Spec)
	h, _ := ConvertAuthorizationPolicy(withHTTP, Options{})
	for _, c := range sampleConns {
		base, more := matches(a, c), matches(h, c)
		if a.Action == security.Action_DENY && base && !more {
			t.Fatalf("HTTP attributes made a DENY match less: %v on %v vs %v", c, a, h)
		}
		if a.Action == security.Action_ALLOW && more && !base {
			t.Fatalf("HTTP attributes made an ALLOW match more: %v on %v vs %v", c, a, h)
		}
	}

	broken := ap.DeepCopy()
	broken.Spec.Rules = append(broken.Spec.Rules, &securityv1beta1.Rule{
		To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: []string{"http"}}}},
	})
	bb, _ := ConvertAuthorizationPolicy(broken, Options{})
	checkFailsClosed(t, bb, "policy with an invalid rule")
}

func checkFailsClosed(t *testing.T, a *security.Authorization, what string) {
	t.Helper()
	for _, c := range sampleConns {
		m := matches(a, c)
		if a.Action == security.Action_ALLOW && m {
			t.Fatalf("%s allows %v: %v", what, c, a)
		}
		if a.Action == security.Action_DENY && !m {
			t.Fatalf("%s does not deny %v: %v", what, c, a)
		}
	}
}

// addHTTPAttributes puts an attribute only a waypoint can see into every part of every
// rule, keeping the rule valid.
func addHTTPAttributes(spec *securityv1beta1.AuthorizationPolicy) {
	for _, r := range spec.Rules {
		if r == nil {
			continue
		}
		for _, to := range r.To {
			if op := to.GetOperation(); op != nil {
				op.Methods = append(op.Methods, "GET")
			}
		}
		for _, from := range r.From {
			if src := from.GetSource(); src != nil {
				src.RequestPrincipals = append(src.RequestPrincipals, "*")
			}
		}
		r.When = append(r.When, &securityv1beta1.Condition{Key: "request.headers[x-a]", Values: []string{"b"}})
	}
}

func checkWellFormed(t *testing.T, a *security.Authorization) {
	t.Helper()
	for _, g := range a.Groups {
		for _, r := range g.Rules {
			for _, m := range r.Matches {
				if isEmptyMatch(m) {
					t.Fatalf("empty match in %v", a)
				}
				for _, addrs := range [][]*security.Address{m.SourceIps, m.NotSourceIps, m.DestinationIps, m.NotDestinationIps} {
					for _, ad := range addrs {
						if n := len(ad.Address); (n != 4 && n != 16) || ad.Length > uint32(n*8) {
							t.Fatalf("bad address %v in %v", ad, a)
						}
					}
				}
				for _, p := range append(m.DestinationPorts, m.NotDestinationPorts...) {
					if p > 65535 {
						t.Fatalf("bad port %d in %v", p, a)
					}
				}
			}
		}
	}
}
