package rbac

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// FuzzCompile feeds arbitrary Authorization bytes through Compile and Evaluate: nothing
// panics, and for a single enforced policy the decision is exactly "allowed iff matched"
// for ALLOW and "denied iff matched" for DENY.
func FuzzCompile(f *testing.F) {
	for _, a := range []*security.Authorization{strict, allowAll,
		pol("demo", "m", nsScope, allow, one(&security.Match{
			SourceIps:  []*security.Address{cidr("10.0.0.0/8"), {Address: []byte{1}, Length: 99}},
			Principals: []*security.StringMatch{prefixSM("cluster.local/"), {}}, DestinationPorts: []uint32{80, 1 << 20},
		})),
	} {
		b, err := proto.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	conns := []Connection{mtls, plain,
		{SrcIdentity: spiffe.Identity{TrustDomain: "td", Namespace: "x", ServiceAccount: "y"},
			SrcIP: netip.MustParseAddr("2001:db8::1"), DstIP: netip.MustParseAddr("2001:db8::2"), DstPort: 1}}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := &security.Authorization{}
		if err := proto.Unmarshal(b, a); err != nil {
			return
		}
		p, err := Compile("fuzz/p", a)
		if err != nil {
			return
		}
		s := NewSet([]*Policy{p})
		for _, c := range conns {
			d := s.Evaluate(Destination{Namespace: a.GetNamespace(), Policies: []string{"fuzz/p"}}, c)
			if p.DryRun {
				if !d.Allow {
					t.Fatalf("dry-run policy decided %+v", d)
				}
				continue
			}
			if matched := p.Matches(c); d.Allow != (matched == (p.Action == security.Action_ALLOW)) {
				t.Fatalf("decision %+v inconsistent with match=%v action=%v", d, matched, p.Action)
			}
		}
	})
}
