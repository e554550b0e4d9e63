package policy

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi/security"
)

type mtlsMode = securityv1beta1.PeerAuthentication_MutualTLS_Mode

const (
	modeUnset      = securityv1beta1.PeerAuthentication_MutualTLS_UNSET
	modeDisable    = securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
	modePermissive = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
	modeStrict     = securityv1beta1.PeerAuthentication_MutualTLS_STRICT
)

// peerAuth is a validated PeerAuthentication reduced to what ambient mode uses. In
// ambient mode DISABLE means the same as PERMISSIVE: plaintext is accepted.
type peerAuth struct {
	namespace, name string
	created         time.Time
	// selector is nil for a mesh or namespace policy (no selector or no labels), else
	// the labels a workload policy selects by.
	selector map[string]string
	mode     mtlsMode
	ports    map[uint32]mtlsMode
}

// normalizePeerAuth validates a PeerAuthentication as Istio's webhook does. An invalid
// one fails closed: it keeps its level (a selector that is itself invalid makes it a
// namespace policy) and becomes STRICT with no port-level exceptions.
func normalizePeerAuth(pa *securityv1.PeerAuthentication, root string) (*peerAuth, []Problem) {
	r := &reporter{kind: KindPeerAuthentication, namespace: pa.Namespace, name: pa.Name}
	spec := &pa.Spec
	p := &peerAuth{namespace: pa.Namespace, name: pa.Name, created: pa.CreationTimestamp.Time, mode: spec.GetMtls().GetMode()}
	if labels := spec.GetSelector().GetMatchLabels(); len(labels) > 0 && validateSelector(r, labels) {
		p.selector = maps.Clone(labels)
	}
	if !knownMode(p.mode) {
		r.invalid("mtls: unknown mode %d", int32(p.mode))
	}
	if len(spec.GetPortLevelMtls()) > 0 {
		if p.selector == nil {
			r.invalid("portLevelMtls needs a workload selector; a mesh or namespace policy cannot have port-level mTLS")
		}
		p.ports = map[uint32]mtlsMode{}
		for _, port := range slices.Sorted(maps.Keys(spec.GetPortLevelMtls())) {
			mode := spec.GetPortLevelMtls()[port].GetMode()
			switch {
			case port == 0 || port > 65535:
				r.invalid("portLevelMtls: port %d not in 1-65535", port)
			case !knownMode(mode):
				r.invalid("portLevelMtls[%d]: unknown mode %d", port, int32(mode))
			}
			p.ports[port] = mode
		}
	}
	if p.selector != nil && pa.Namespace == root {
		r.warn("a PeerAuthentication with a selector in the root namespace %s is ignored in ambient mode", root)
	}
	if r.hasInvalid() {
		p.mode, p.ports = modeStrict, nil
	}
	return p, r.problems
}

func knownMode(m mtlsMode) bool { return m >= modeUnset && m <= modeStrict }

// compareAge orders policies as Istio resolves conflicts: the oldest wins, then (for
// equal creation times, as in a config directory) the lowest name.
func compareAge(a, b *peerAuth) int {
	return cmp.Or(a.created.Compare(b.created), strings.Compare(a.name, b.name))
}

// peerIndex resolves the PeerAuthentication that applies at each level, as Istio's
// ambient controller: the oldest mesh policy (root namespace, no selector), the oldest
// namespace policy, and the oldest workload policy selecting the workload. Root-namespace
// policies with a selector are ignored.
type peerIndex struct {
	root      string
	any       bool // any PeerAuthentication exists: the static STRICT policy is served
	mesh      *peerAuth
	namespace map[string]*peerAuth
	workload  map[string][]*peerAuth // by namespace, oldest first
	converted map[string]bool        // resource names of converted workload policies
}

func newPeerIndex(pas []*securityv1.PeerAuthentication, root string) (*peerIndex, []Problem) {
	x := &peerIndex{root: root, namespace: map[string]*peerAuth{}, workload: map[string][]*peerAuth{}, converted: map[string]bool{}}
	var problems []Problem
	for _, pa := range pas {
		if pa == nil {
			continue
		}
		x.any = true
		p, ps := normalizePeerAuth(pa, root)
		problems = append(problems, ps...)
		switch {
		case p.selector == nil && p.namespace == root:
			if x.mesh == nil || compareAge(p, x.mesh) < 0 {
				x.mesh = p
			}
		case p.selector == nil:
			if cur := x.namespace[p.namespace]; cur == nil || compareAge(p, cur) < 0 {
				x.namespace[p.namespace] = p
			}
		case p.namespace != root:
			x.workload[p.namespace] = append(x.workload[p.namespace], p)
		}
	}
	for _, ws := range x.workload {
		slices.SortFunc(ws, compareAge)
	}
	return x, problems
}

// parentStrict is the mode a workload policy inherits in namespace ns: the namespace
// policy's mode unless UNSET, else the mesh policy's; no policy means PERMISSIVE.
func (x *peerIndex) parentStrict(ns string) bool {
	strict := x.mesh != nil && x.mesh.mode == modeStrict
	if p := x.namespace[ns]; p != nil && p.mode != modeUnset {
		strict = p.mode == modeStrict
	}
	return strict
}

// workloadPolicy returns the oldest workload policy in ns selecting labels, or nil.
func (x *peerIndex) workloadPolicy(ns string, labels map[string]string) *peerAuth {
	for _, p := range x.workload[ns] {
		if selects(p.selector, labels) {
			return p
		}
	}
	return nil
}

// authorizations converts every workload policy with effective port-level exceptions,
// plus the static STRICT policy when any PeerAuthentication exists (as Istio).
func (x *peerIndex) authorizations(out map[string]*security.Authorization) {
	if !x.any {
		return
	}
	out[ResourceName(x.root, StaticStrictName)] = staticStrict(x.root)
	for _, ns := range sortedKeys(x.workload) {
		for _, p := range x.workload[ns] {
			if a := convertPeerAuth(p, x.parentStrict(ns)); a != nil {
				name := ResourceName(a.Namespace, a.Name)
				out[name] = a
				x.converted[name] = true
			}
		}
	}
}

// keysFor lists the PeerAuthentication-derived policies a workload references, as Istio:
// its converted workload policy when that has port-level exceptions, else the static
// STRICT policy when its effective mode is STRICT, else nothing.
func (x *peerIndex) keysFor(ns string, labels map[string]string) []string {
	if !x.any {
		return nil
	}
	strict := x.parentStrict(ns)
	if ns != x.root {
		if w := x.workloadPolicy(ns, labels); w != nil {
			if name := ResourceName(w.namespace, ConvertedPeerAuthenticationPrefix+w.name); x.converted[name] {
				return []string{name}
			}
			strict = inherit(w.mode, strict)
		}
	}
	if strict {
		return []string{ResourceName(x.root, StaticStrictName)}
	}
	return nil
}

func inherit(mode mtlsMode, parentStrict bool) bool {
	if mode == modeUnset {
		return parentStrict
	}
	return mode == modeStrict
}

// convertPeerAuth converts a workload policy whose port-level modes differ from its own
// effective mode into a DENY policy named converted_peer_authentication_<name>, as
// Istio's ambient controller does; nil when no port differs (the static STRICT policy or
// nothing covers the workload). Ports whose mode is UNSET inherit the workload's mode.
//
//   - Effective STRICT with PERMISSIVE/DISABLE ports: one group denying connections
//     without a peer identity to any other port.
//   - Effective PERMISSIVE with STRICT ports: one group per STRICT port denying
//     connections without a peer identity to that port.
func convertPeerAuth(p *peerAuth, parentStrict bool) *security.Authorization {
	if p.selector == nil || len(p.ports) == 0 {
		return nil
	}
	strict := inherit(p.mode, parentStrict)
	a := &security.Authorization{
		Name:      ConvertedPeerAuthenticationPrefix + p.name,
		Namespace: p.namespace,
		Scope:     security.Scope_WORKLOAD_SELECTOR,
		Action:    security.Action_DENY,
	}
	ports := slices.Sorted(maps.Keys(p.ports))
	if !strict {
		for _, port := range ports {
			if p.ports[port] == modeStrict {
				a.Groups = append(a.Groups, &security.Group{Rules: []*security.Rules{{Matches: []*security.Match{
					{NotPrincipals: presence(), DestinationPorts: []uint32{port}},
				}}}})
			}
		}
		if len(a.Groups) == 0 {
			return nil
		}
		return a
	}
	var rules []*security.Rules
	for _, port := range ports {
		if m := p.ports[port]; m == modePermissive || m == modeDisable {
			rules = append(rules, &security.Rules{Matches: []*security.Match{{NotDestinationPorts: []uint32{port}}}})
		}
	}
	if len(rules) == 0 {
		return nil
	}
	noPeer := &security.Rules{Matches: []*security.Match{{NotPrincipals: presence()}}}
	// Istio puts the plaintext clause first for an own STRICT mode, last for an inherited one.
	if p.mode == modeStrict {
		rules = append([]*security.Rules{noPeer}, rules...)
	} else {
		rules = append(rules, noPeer)
	}
	a.Groups = []*security.Group{{Rules: rules}}
	return a
}

// staticStrict is Istio's static policy denying connections without a peer identity
// (plaintext), listed by every workload whose effective mode is STRICT.
func staticStrict(root string) *security.Authorization {
	return &security.Authorization{
		Name:      StaticStrictName,
		Namespace: root,
		Scope:     security.Scope_WORKLOAD_SELECTOR,
		Action:    security.Action_DENY,
		Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{
			{NotPrincipals: presence()},
		}}}}},
	}
}

func presence() []*security.StringMatch {
	return []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}}
}
