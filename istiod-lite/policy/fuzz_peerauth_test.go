package policy

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var fuzzPorts = []uint32{80, 8080, 9090}

// modeGen draws optional modes from fuzz bytes: absent, UNSET, DISABLE, PERMISSIVE, STRICT.
type modeGen struct{ data []byte }

func (g *modeGen) next() (mtlsMode, bool) {
	if len(g.data) == 0 {
		return 0, false
	}
	b := g.data[0] % 5
	g.data = g.data[1:]
	if b == 4 {
		return 0, false
	}
	return mtlsMode(b), true
}

// FuzzPeerAuthenticationModes draws mesh, namespace and workload modes and port-level
// overrides, and checks every decision against the plain reading of Istio's inheritance:
// the port's mode, else the workload's, else the namespace's, else the mesh's, else
// PERMISSIVE; UNSET inherits; only STRICT refuses plaintext; mTLS is always accepted.
func FuzzPeerAuthenticationModes(f *testing.F) {
	f.Add([]byte{3, 2, 0, 2, 4, 4})
	f.Add([]byte{4, 3, 4, 1, 3, 0})
	f.Add([]byte{3, 0, 0, 4, 1, 4})
	f.Add([]byte{2, 4, 1, 3, 3, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &modeGen{data: data}
		mesh, hasMesh := g.next()
		ns, hasNS := g.next()
		wl, hasWL := g.next()
		ports := map[uint32]mtlsMode{}
		for _, p := range fuzzPorts {
			if m, ok := g.next(); ok {
				ports[p] = m
			}
		}
		var pas []*securityv1.PeerAuthentication
		if hasMesh {
			pas = append(pas, peerAuthObject("istio-system", "mesh", nil, mesh, nil))
		}
		if hasNS {
			pas = append(pas, peerAuthObject("shop", "ns", nil, ns, nil))
		}
		if hasWL {
			pas = append(pas, peerAuthObject("shop", "web", map[string]string{"app": "web"}, wl, ports))
		}
		set := Build(nil, pas, Options{})
		again := Build(nil, pas, Options{})
		checkSameSet(t, set, again)
		if len(set.Problems) != 0 {
			t.Fatalf("valid objects reported %v", set.Problems)
		}
		for _, port := range append([]uint32{443}, fuzzPorts...) {
			m := modePermissive
			for _, level := range []struct {
				m  mtlsMode
				ok bool
			}{{mesh, hasMesh}, {ns, hasNS}, {wl, hasWL}, {ports[port], hasWL}} {
				if level.ok && level.m != modeUnset {
					m = level.m
				}
			}
			listed := set.PoliciesFor("shop", map[string]string{"app": "web"})
			dst := netip.AddrPortFrom(netip.MustParseAddr("10.244.0.10"), uint16(port))
			plain := decide(set.Authorizations, "shop", listed, conn{src: netip.MustParseAddr("10.1.0.5"), dst: dst})
			if plain == (m == modeStrict) {
				t.Fatalf("port %d: plaintext allowed=%v, effective mode %v (mesh %v/%v ns %v/%v wl %v/%v ports %v); listed %v",
					port, plain, m, mesh, hasMesh, ns, hasNS, wl, hasWL, ports, listed)
			}
			mtls := conn{id: "spiffe://cluster.local/ns/a/sa/b", src: netip.MustParseAddr("10.1.0.5"), dst: dst}
			if !decide(set.Authorizations, "shop", listed, mtls) {
				t.Fatalf("port %d: mTLS refused; listed %v", port, listed)
			}
		}
	})
}

// FuzzPeerAuthenticationYAML feeds arbitrary PeerAuthentication specs at every level: no
// panic, deterministic, and every listed policy exists.
func FuzzPeerAuthenticationYAML(f *testing.F) {
	f.Add(`{mtls: {mode: STRICT}}`, `{selector: {matchLabels: {app: web}}, portLevelMtls: {8080: {mode: PERMISSIVE}}}`)
	f.Add(`{portLevelMtls: {0: {mode: 7}}}`, `{selector: {matchLabels: {"*": x}}, mtls: {mode: DISABLE}, portLevelMtls: {1: {}}}`)
	f.Fuzz(func(t *testing.T, nsSpec, wlSpec string) {
		var pas []*securityv1.PeerAuthentication
		for _, x := range []struct{ ns, name, spec string }{
			{"istio-system", "mesh", nsSpec}, {"shop", "ns", nsSpec}, {"shop", "web", wlSpec},
		} {
			pa := &securityv1.PeerAuthentication{}
			if err := yaml.Unmarshal([]byte(`{"spec": `+x.spec+`}`), pa); err != nil {
				return
			}
			pa.Namespace, pa.Name = x.ns, x.name
			pas = append(pas, pa)
		}
		set := Build(nil, pas, Options{})
		checkSameSet(t, set, Build(nil, pas, Options{}))
		for _, labels := range []map[string]string{{"app": "web"}, {"app": "db"}, nil} {
			for _, name := range set.PoliciesFor("shop", labels) {
				if set.Authorizations[name] == nil {
					t.Fatalf("listed policy %s does not exist", name)
				}
			}
		}
	})
}

func peerAuthObject(ns, name string, selector map[string]string, mode mtlsMode, ports map[uint32]mtlsMode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	if selector != nil {
		pa.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: selector}
	}
	if len(ports) > 0 {
		pa.Spec.PortLevelMtls = map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{}
		for p, m := range ports {
			pa.Spec.PortLevelMtls[p] = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: m}
		}
	}
	return pa
}

func checkSameSet(t *testing.T, a, b *Set) {
	t.Helper()
	if len(a.Authorizations) != len(b.Authorizations) || len(a.Problems) != len(b.Problems) {
		t.Fatalf("two builds differ: %d/%d resources", len(a.Authorizations), len(b.Authorizations))
	}
	for name, x := range a.Authorizations {
		if !proto.Equal(x, b.Authorizations[name]) {
			t.Fatalf("two builds differ on %s", name)
		}
	}
}
