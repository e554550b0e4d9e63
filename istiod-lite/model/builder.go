package model

import (
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/istiod-lite/policy"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// Builder computes models of successive snapshots incrementally (F-CP-4): it remembers
// the previous snapshot's objects by identity and reuses a resource, the very same
// pointer, when none of its inputs changed. A Workload's inputs are its pod, the pod's
// Namespace, the Services of that namespace, the policy objects and the waypoints; a
// Service's inputs are the Service, its Namespace and the waypoints (Gateways and their
// Services' VIPs); the policy set is reconverted only when a policy object changed.
// The models it returns are equal to Build's for the same snapshot.
//
// It relies on what both config sources guarantee: objects in a snapshot are immutable
// and a changed object is a new pointer (client-go informers replace cached objects;
// kubefile.Loader reparses only changed files). A caller that modifies an object in
// place must use a new Builder. A Builder is not safe for concurrent use.
type Builder struct {
	o    Options
	last *memo
}

// memo is what one Build leaves for the next.
type memo struct {
	authz      []*securityv1.AuthorizationPolicy
	peer       []*securityv1.PeerAuthentication
	policies   *policy.Set
	namespaces map[string]nsInputs
	services   map[*corev1.Service]*workloadapi.Address
	waypoints  waypointTable
	// bc is the build context of these inputs (namespaces, services, policies,
	// waypoints), reused by the fast path, which runs only when they are unchanged.
	bc *builder

	// The snapshot's lists (copies) and the model built from them; the model's outs are
	// aligned with pods.
	pods     []*corev1.Pod
	nsList   []*corev1.Namespace
	svcList  []*corev1.Service
	gateways []*gatewayv1.Gateway
	model    *Model
}

// nsInputs are the namespace-wide inputs of the namespace's workloads.
type nsInputs struct {
	ns       *corev1.Namespace // nil when absent
	services []*corev1.Service
}

// podOutput is what one snapshot pod gives: whether it counts (not terminated), is
// enrolled, and the Address built from it (nil when the pod has no usable IP).
type podOutput struct {
	pod      *corev1.Pod
	live     bool
	enrolled bool
	addr     *workloadapi.Address
}

// NewBuilder returns a Builder with no history: its first Build computes everything.
func NewBuilder(o Options) *Builder {
	return &Builder{o: o.withDefaults()}
}

// Build computes the model of s, reusing what the previous call computed for objects
// that did not change. A nil snapshot gives an empty model (and forgets the history).
func (b *Builder) Build(s *kubefile.Snapshot) *Model {
	m := &Model{
		Authorizations: map[string]*security.Authorization{},
		trustDomain:    b.o.TrustDomain,
		seq:            modelSeq.Add(1),
	}
	if s == nil {
		b.last = nil
		return m
	}
	if m, ok := b.buildPodsOnly(s, b.last); ok {
		return m
	}
	last := b.last
	if last == nil {
		last = &memo{}
	}
	next := &memo{
		authz:      slices.Clone(s.AuthorizationPolicies),
		peer:       slices.Clone(s.PeerAuthentications),
		policies:   last.policies,
		namespaces: map[string]nsInputs{},
		services:   make(map[*corev1.Service]*workloadapi.Address, len(s.Services)),
		waypoints:  buildWaypoints(s),
	}
	waypointsSame := last.waypoints.equal(next.waypoints)
	policiesSame := last.policies != nil && slices.Equal(last.authz, s.AuthorizationPolicies) &&
		slices.Equal(last.peer, s.PeerAuthentications)
	if !policiesSame {
		next.policies = policy.Build(s.AuthorizationPolicies, s.PeerAuthentications, policy.Options{RootNamespace: b.o.RootNamespace})
	}
	bc := newBuilder(s, b.o, next.policies, next.waypoints)
	next.bc = bc
	addrs := newAddressWriter(len(s.Pods) + len(s.Services))
	m.outs = newPodOutputs(len(s.Pods))
	var reuse map[podKey]podOutput // last time's outputs by pod
	if last.model != nil {
		reuse = make(map[podKey]podOutput, len(last.pods))
		for out := range last.model.outs.all() {
			reuse[podKey{out.pod.Namespace, out.pod.Name}] = *out
		}
	}
	m.Authorizations, m.Problems = next.policies.Authorizations, next.policies.Problems

	lastNS := make(map[string]*corev1.Namespace, len(last.nsList))
	for _, ns := range last.nsList {
		lastNS[ns.Name] = ns
	}
	for _, svc := range s.Services {
		addr, ok := last.services[svc]
		if ok && (!waypointsSame || lastNS[svc.Namespace] != bc.namespaces[svc.Namespace]) {
			ok = false // its waypoint may have changed
		}
		if !ok {
			if out := bc.service(svc); out != nil {
				addr = &workloadapi.Address{Type: &workloadapi.Address_Service{Service: out}}
			}
		}
		next.services[svc] = addr
		if addr != nil {
			out := addr.GetService()
			addrs.set(ServiceName(out.Namespace, out.Hostname), addr)
		}
	}

	// A namespace is clean when the policies, the Namespace object and its Services are
	// the same objects as last time: its unchanged pods keep their workloads. Pods come
	// sorted by namespace, so the answer is cached for the run of pods in one namespace.
	clean := map[string]bool{}
	var curNS string
	var curClean bool
	isClean := func(ns string) bool {
		if ns == curNS && curNS != "" {
			return curClean
		}
		c, ok := clean[ns]
		if !ok {
			in := nsInputs{ns: bc.namespaces[ns], services: bc.services[ns]}
			next.namespaces[ns] = in
			prev, had := last.namespaces[ns]
			c = policiesSame && waypointsSame && had && prev.ns == in.ns && slices.Equal(prev.services, in.services)
			clean[ns] = c
		}
		curNS, curClean = ns, c
		return c
	}

	for i, pod := range s.Pods {
		out, ok := reuse[podKey{pod.Namespace, pod.Name}]
		// isClean first: it records the namespace's inputs for next time.
		if !isClean(pod.Namespace) || !ok || out.pod != pod {
			out = b.podOutput(bc, pod)
		}
		*m.outs.at(i) = out
		if out.addr != nil {
			addrs.set(out.addr.GetWorkload().Uid, out.addr)
		}
	}
	m.Addresses = *addrs.m
	next.rememberLists(s, m)
	b.last = next
	return m
}

// podOutput computes what one pod gives.
func (b *Builder) podOutput(bc *builder, pod *corev1.Pod) podOutput {
	out := podOutput{pod: pod}
	if isTerminal(pod) {
		return out
	}
	out.live, out.enrolled = true, bc.enrolled(pod)
	if w := bc.workload(pod); w != nil {
		out.addr = &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}}
	}
	return out
}
