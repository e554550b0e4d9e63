// Package model turns a snapshot of Kubernetes objects (pkg/kubefile) into the workload
// discovery resources istiod-lite serves to ztunnels: Istio's istio.workload.Address,
// each either a Workload (one per pod with an IP) or a Service (one per Service with a
// cluster IP), and Istio's istio.security.Authorization, converted from
// AuthorizationPolicy and PeerAuthentication by package policy. Build is a pure
// function: the same snapshot always gives the same model, whichever config source
// produced it (F-CP-3).
package model

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/ambitmesh/ambit/istiod-lite/policy"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"istio.io/istio/pkg/workloadapi/security"
)

// Options parameterise Build. Zero fields take Istio's defaults.
type Options struct {
	// ClusterID names the cluster in workload uids and Workload.cluster_id
	// (default "Kubernetes", as Istio).
	ClusterID string
	// TrustDomain is the SPIFFE trust domain of every workload (default cluster.local).
	TrustDomain string
	// DomainSuffix ends service hostnames, <name>.<ns>.svc.<suffix> (default cluster.local).
	DomainSuffix string
	// RootNamespace holds mesh-wide policies (default "istio-system", Istio's
	// meshConfig.rootNamespace).
	RootNamespace string
}

func (o Options) withDefaults() Options {
	if o.ClusterID == "" {
		o.ClusterID = wire.DefaultClusterID
	}
	if o.TrustDomain == "" {
		o.TrustDomain = spiffe.DefaultTrustDomain
	}
	if o.DomainSuffix == "" {
		o.DomainSuffix = "cluster.local"
	}
	if o.RootNamespace == "" {
		o.RootNamespace = wire.RootNamespace
	}
	return o
}

// Model is the workload discovery state computed from one snapshot. It is immutable once
// built: callers must not modify the resources it holds.
type Model struct {
	// Addresses holds every WDS Address resource keyed by its resource name: workloads by
	// uid ("<cluster>//Pod/<ns>/<name>"), services by "<ns>/<hostname>".
	Addresses AddressMap
	// Authorizations holds every WDS Authorization resource keyed by its resource name,
	// "<ns>/<name>" (see package policy for how policies are converted).
	Authorizations map[string]*security.Authorization
	// Problems lists what is wrong with the snapshot's policy objects (invalid objects,
	// converted fail closed, and warnings), sorted, for the caller to log and report.
	Problems []policy.Problem

	trustDomain string
	outs        podOutputs // one per snapshot pod, in snapshot order

	enrolledOnce sync.Once
	enrolled     map[podKey]bool // computed on first use

	// seq numbers models (from 1, process-wide); when baseSeq is not 0, m equals model
	// baseSeq except for the Addresses named in changed (Builder's fast path). A number,
	// not a pointer: a chain of models must not keep every predecessor alive.
	seq     uint64
	baseSeq uint64
	changed []string

	identitiesOnce   sync.Once
	identitiesByNode map[string][]spiffe.Identity // computed on first use
}

type podKey struct{ namespace, name string }

// Build computes the model of a snapshot. A nil snapshot gives an empty model. Objects
// that cannot be represented (a pod IP that does not parse) are left out rather than
// failing the whole build, as Istio does. It is NewBuilder(o).Build(s): a Builder kept
// across snapshots gives the same models while recomputing only what changed.
func Build(s *kubefile.Snapshot, o Options) *Model {
	return NewBuilder(o).Build(s)
}

// IdentitiesOnNode returns the distinct identities (service accounts) of the
// non-terminated pods scheduled on node, sorted by namespace then service account. The CA
// uses it to check a ztunnel's impersonation request (as Istio's node authorizer: a
// ztunnel may only ask for identities of pods on its own node). The slice is a copy.
func (m *Model) IdentitiesOnNode(node string) []spiffe.Identity {
	m.identitiesOnce.Do(m.indexIdentities)
	return slices.Clone(m.identitiesByNode[node])
}

// indexIdentities computes identitiesByNode; once per model, on the CA's first
// question, so models built under churn and never asked cost nothing.
func (m *Model) indexIdentities() {
	sets := map[string]map[spiffe.Identity]bool{}
	for p := range m.outs.all() {
		node := p.pod.Spec.NodeName
		if !p.live || node == "" {
			continue
		}
		if sets[node] == nil {
			sets[node] = map[spiffe.Identity]bool{}
		}
		sets[node][spiffe.Identity{TrustDomain: m.trustDomain, Namespace: p.pod.Namespace, ServiceAccount: serviceAccount(p.pod)}] = true
	}
	m.identitiesByNode = make(map[string][]spiffe.Identity, len(sets))
	for node, set := range sets {
		ids := make([]spiffe.Identity, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, compareIdentity)
		m.identitiesByNode[node] = ids
	}
}

// Enrolled reports whether the named pod is in the ambient mesh: its namespace or itself
// carries istio.io/dataplane-mode=ambient, the pod does not opt out with "none", and it
// is not a host-network pod. Unknown and terminated pods are not enrolled.
func (m *Model) Enrolled(namespace, pod string) bool {
	m.enrolledOnce.Do(func() {
		m.enrolled = map[podKey]bool{}
		for p := range m.outs.all() {
			if p.enrolled {
				m.enrolled[podKey{p.pod.Namespace, p.pod.Name}] = true
			}
		}
	})
	return m.enrolled[podKey{namespace, pod}]
}

func compareIdentity(a, b spiffe.Identity) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.ServiceAccount, b.ServiceAccount))
}
