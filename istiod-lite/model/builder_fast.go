package model

import (
	"slices"
	"sync/atomic"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// buildPodsOnly is Build's fast path for the common change (F-CP-4's churn): the same
// number of pods, and the same Namespace, Service and policy objects as last time. The
// previous model's Addresses and pod outputs are shared, copying only the shards and
// chunks of the pods that are new objects at their position in the sorted list, and
// only those pods are redone with the previous build context, so the cost is a
// pointer scan plus the changes, not an operation per pod. It reports false when the snapshot does not
// qualify.
func (b *Builder) buildPodsOnly(s *kubefile.Snapshot, last *memo) (*Model, bool) {
	if last == nil || last.model == nil || last.bc == nil || len(s.Pods) != len(last.pods) ||
		!slices.Equal(s.Namespaces, last.nsList) || !slices.Equal(s.Services, last.svcList) ||
		!slices.Equal(s.Gateways, last.gateways) ||
		!slices.Equal(s.AuthorizationPolicies, last.authz) || !slices.Equal(s.PeerAuthentications, last.peer) {
		return nil, false
	}
	prev := last.model
	var changed []int
	for i, pod := range s.Pods {
		if pod != last.pods[i] {
			changed = append(changed, i)
		}
	}
	// Only the shards and chunks holding a changed pod are copied; the rest are the
	// previous model's.
	addrs, outs := deriveAddresses(&prev.Addresses), deriveOutputs(prev.outs)
	var names []string
	// Remove every replaced pod's Address first: with a pod deleted and another added,
	// positions shift and a name removed at one index may be added back at another.
	for _, i := range changed {
		if a := prev.outs.at(i).addr; a != nil {
			addrs.delete(a.GetWorkload().Uid)
			names = append(names, a.GetWorkload().Uid)
		}
	}
	for _, i := range changed {
		out := b.podOutput(last.bc, s.Pods[i])
		outs.set(i, out)
		if a := out.addr; a != nil {
			addrs.set(a.GetWorkload().Uid, a)
			names = append(names, a.GetWorkload().Uid)
		}
	}
	m := &Model{
		Addresses: *addrs.m, Authorizations: prev.Authorizations, Problems: prev.Problems,
		trustDomain: b.o.TrustDomain, outs: outs.o,
		seq: modelSeq.Add(1), baseSeq: prev.seq, changed: names,
	}
	next := *last
	next.pods, next.model = slices.Clone(s.Pods), m
	b.last = &next
	return m, true
}

// modelSeq numbers the models Builders produce.
var modelSeq atomic.Uint64

// ChangedSince reports, when m was built from prev by a Builder's fast path (only pods
// changed), the names of the Addresses that may differ between the two, upserted or
// removed; Authorizations are then the same. ok is false otherwise: the caller must
// compare everything.
func (m *Model) ChangedSince(prev *Model) (names []string, ok bool) {
	if m == nil || prev == nil || m.baseSeq == 0 || m.baseSeq != prev.seq {
		return nil, false
	}
	return m.changed, true
}

// rememberLists records copies of the snapshot's lists (a caller may reuse its slices)
// and the model, for the next fast path.
func (n *memo) rememberLists(s *kubefile.Snapshot, m *Model) {
	n.pods, n.nsList, n.svcList, n.model = slices.Clone(s.Pods), slices.Clone(s.Namespaces), slices.Clone(s.Services), m
	n.gateways = slices.Clone(s.Gateways)
}
