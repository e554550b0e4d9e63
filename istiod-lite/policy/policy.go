// Package policy converts Istio's security.istio.io AuthorizationPolicy and
// PeerAuthentication objects into the L4 istio.security.Authorization resources that
// istiod-lite serves to ztunnels over WDS, and tells which of them a workload lists in
// Workload.authorization_policies (F-SEC-2, F-SEC-3, F-SEC-6).
//
// The conversion follows Istio's ambient controller (pilot/pkg/serviceregistry/ambient:
// authorization.go, policies.go) and ztunnel's matching rules (src/rbac.rs): resource
// names, scopes, the match layout, the converted PeerAuthentication policies and the
// static STRICT policy are Istio's. Where Istio would widen access it deliberately does
// not, and every such place fails closed:
//
//   - Objects Istio's validating webhook rejects (a bad CIDR, a non-numeric port, an
//     unknown `when` key, …) never reach Istio's converter; here they are converted into
//     a policy that keeps its scope and selection but allows nothing (ALLOW) or denies
//     everything it selects (DENY), and are reported as a Problem.
//   - In a DENY policy, the parts of a rule ztunnel cannot see (HTTP attributes,
//     request principals, remote IPs, trust domains) are dropped so the rule denies
//     more broadly, as Istio documents. Istio itself emits an empty Match for them,
//     which ztunnel never matches, so an L7-only DENY rule is a no-op there
//     (istio/istio#61126); the output here has no empty Match.
//   - Trust domains (source.trustDomains), which the Authorization proto cannot carry,
//     are treated like HTTP attributes; Istio drops them silently, so an ALLOW source
//     combining a trust domain with, say, a namespace admits that namespace from any
//     trust domain.
//   - PeerAuthentication modes resolve by their plain meaning: the port's mode, else the
//     workload's, else the namespace's, else the mesh's, else PERMISSIVE; UNSET inherits
//     and DISABLE acts as PERMISSIVE (ztunnel always accepts HBONE). For a few
//     combinations (an inherited STRICT mode with a DISABLE port, an UNSET namespace
//     policy under a STRICT mesh policy, a PERMISSIVE workload with a STRICT port under
//     a STRICT mesh policy) Istio drops the port override or references a converted
//     policy it never sends; here the workload gets the policy its modes mean, in the
//     shape Istio uses for the other combinations.
//
// Everything here is pure: the same objects always give the same resources.
package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Kinds of the objects converted, as reported in Problem.Kind.
const (
	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindPeerAuthentication  = "PeerAuthentication"
)

// Names Istio gives the Authorization resources it derives from PeerAuthentication. Both
// use '_', which Kubernetes names cannot hold, so they never clash with a user's policy.
const (
	// StaticStrictName is the name of the DENY-plaintext policy in the root namespace
	// that every workload under an effective STRICT mode lists.
	StaticStrictName = "istio_converted_static_strict"
	// ConvertedPeerAuthenticationPrefix starts the name of the policy converted from a
	// workload PeerAuthentication with port-level exceptions.
	ConvertedPeerAuthenticationPrefix = "converted_peer_authentication_"
)

// AnnotationDryRun marks an AuthorizationPolicy as dry-run ("true"). Istio does not send
// dry-run policies to ztunnel by default, and neither does this package.
const AnnotationDryRun = "istio.io/dry-run"

// Options parameterise the conversion. Zero fields take Istio's defaults.
type Options struct {
	// RootNamespace holds mesh-wide policies (default "istio-system", Istio's
	// meshConfig.rootNamespace).
	RootNamespace string
}

func (o Options) withDefaults() Options {
	if o.RootNamespace == "" {
		o.RootNamespace = wire.RootNamespace
	}
	return o
}

// Problem is one thing wrong with a policy object, for the caller to log and to report
// as an Event or status condition (as Istio reports it in the object's status).
type Problem struct {
	// Kind is KindAuthorizationPolicy or KindPeerAuthentication.
	Kind      string
	Namespace string
	Name      string
	// Invalid is true when the object was rejected and converted fail closed (an ALLOW
	// policy allows nothing, a DENY policy denies everything it selects, a
	// PeerAuthentication is STRICT); false for a warning: the object was converted with
	// a caveat (HTTP attributes dropped) or intentionally not sent to ztunnel.
	Invalid bool
	Message string
}

// String renders "<Kind> <ns>/<name>: invalid: <message>" (or "warning:").
func (p Problem) String() string {
	sev := "warning"
	if p.Invalid {
		sev = "invalid"
	}
	return fmt.Sprintf("%s %s/%s: %s: %s", p.Kind, p.Namespace, p.Name, sev, p.Message)
}

// ResourceName is the WDS resource name of an Authorization, "<namespace>/<name>", as
// Istio names it and as ztunnel keys its policy store.
func ResourceName(namespace, name string) string {
	return namespace + "/" + name
}

// reporter collects the problems of one object.
type reporter struct {
	kind, namespace, name string
	problems              []Problem
}

func (r *reporter) invalid(format string, args ...any) {
	r.add(true, fmt.Sprintf(format, args...))
}

func (r *reporter) warn(format string, args ...any) {
	r.add(false, fmt.Sprintf(format, args...))
}

func (r *reporter) add(invalid bool, msg string) {
	r.problems = append(r.problems, Problem{Kind: r.kind, Namespace: r.namespace, Name: r.name, Invalid: invalid, Message: msg})
}

func (r *reporter) hasInvalid() bool {
	return slices.ContainsFunc(r.problems, func(p Problem) bool { return p.Invalid })
}

// sortProblems orders problems by kind, namespace, name, then message.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name), strings.Compare(a.Message, b.Message))
	})
}

// selects reports whether every selector label is on the workload with the same value
// (Istio's labels.Instance.SubsetOf): an empty selector selects every workload.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
