package policy

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi/security"
)

// ConvertAuthorizationPolicy converts one AuthorizationPolicy into the Authorization
// ztunnel enforces, as Istio's ambient controller does, and reports its problems.
//
// The result is named after the policy (resource name ResourceName(ns, name)). Its scope
// is WORKLOAD_SELECTOR when the policy has a selector, GLOBAL when it has none and lives
// in the root namespace, NAMESPACE otherwise. Each rule becomes one Group whose Rules are
// the rule's `to`, `from` and each `when` condition, in that order; see convertRule for
// HTTP attributes. An ALLOW or DENY policy without rules has no groups and matches
// nothing; a rule `{}` becomes an empty group, which matches every connection.
//
// The Authorization is nil, with no problem, for a policy bound to waypoints
// (targetRef/targetRefs), and nil with a warning for the AUDIT and CUSTOM actions and
// for dry-run policies (annotation istio.io/dry-run: "true"): ztunnel enforces none of
// them. An invalid policy (see package doc) fails closed: it keeps its scope, an ALLOW
// policy gets no groups (it allows nothing, so the workloads it selects accept only what
// another ALLOW policy allows) and a DENY policy gets one empty group (it denies every
// connection to what it selects). A nil policy gives nil.
func ConvertAuthorizationPolicy(ap *securityv1.AuthorizationPolicy, o Options) (*security.Authorization, []Problem) {
	if ap == nil {
		return nil, nil
	}
	a, _, problems := convertAuthorizationPolicy(ap, o.withDefaults().RootNamespace)
	return a, problems
}

// convertAuthorizationPolicy also returns the labels a WORKLOAD_SELECTOR policy selects
// by (nil for other scopes; empty, selecting every workload in reach, when the
// selector is empty or invalid).
func convertAuthorizationPolicy(ap *securityv1.AuthorizationPolicy, root string) (*security.Authorization, map[string]string, []Problem) {
	r := &reporter{kind: KindAuthorizationPolicy, namespace: ap.Namespace, name: ap.Name}
	spec := &ap.Spec
	targeted := spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0
	if targeted && spec.GetSelector() == nil {
		return nil, nil, nil // enforced by a waypoint, not by ztunnel
	}
	switch spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_AUDIT, securityv1beta1.AuthorizationPolicy_CUSTOM:
		r.warn("ztunnel does not enforce the %s action; the policy is not sent to ztunnel", spec.GetAction())
		return nil, nil, r.problems
	}
	if dryRun(r, ap.Annotations[AnnotationDryRun]) {
		return nil, nil, r.problems
	}

	a := &security.Authorization{Name: ap.Name, Namespace: ap.Namespace}
	var selector map[string]string
	switch {
	case spec.GetSelector() != nil:
		a.Scope = security.Scope_WORKLOAD_SELECTOR
		selector = map[string]string{}
		if labels := spec.GetSelector().GetMatchLabels(); validateSelector(r, labels) {
			selector = maps.Clone(labels)
			if selector == nil {
				selector = map[string]string{}
			}
		}
	case ap.Namespace == root:
		a.Scope = security.Scope_GLOBAL
	default:
		a.Scope = security.Scope_NAMESPACE
	}
	if targeted {
		r.invalid("only one of selector and targetRef/targetRefs may be set")
	}
	switch spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		a.Action = security.Action_ALLOW
	case securityv1beta1.AuthorizationPolicy_DENY:
		a.Action = security.Action_DENY
	default:
		r.invalid("unknown action %d", int32(spec.GetAction()))
		a.Action = security.Action_DENY
	}
	if spec.GetProvider() != nil {
		r.invalid("provider is only allowed with the CUSTOM action")
	}
	validateRules(r, spec.GetRules())
	if r.hasInvalid() {
		failClosed(a)
		return a, selector, r.problems
	}
	convertRules(r, a, spec.GetRules())
	return a, selector, r.problems
}

// dryRun reports whether the annotation marks a dry-run policy. A value that is not a
// boolean is warned about and the policy enforced, as Istio does.
func dryRun(r *reporter, v string) bool {
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.warn("annotation %s=%q is not a boolean; the policy is enforced", AnnotationDryRun, v)
		return false
	}
	if b {
		r.warn("dry-run policies are not sent to ztunnel")
	}
	return b
}

// failClosed empties an invalid policy's groups: an ALLOW policy matches nothing, a
// DENY policy matches every connection (one group with no clauses).
func failClosed(a *security.Authorization) {
	a.Groups = nil
	if a.Action == security.Action_DENY {
		a.Groups = []*security.Group{{}}
	}
}

// convertRules fills the groups of a valid policy and warns about HTTP attributes.
func convertRules(r *reporter, a *security.Authorization, rules []*securityv1beta1.Rule) {
	if len(rules) == 0 && a.Action == security.Action_DENY {
		r.warn("a DENY policy without rules never matches; add an empty rule {} to deny every connection")
	}
	found := map[string]bool{}
	for _, rule := range rules {
		clauses, l7, keep := convertRule(a.Action, rule, a.Namespace)
		if keep {
			a.Groups = append(a.Groups, &security.Group{Rules: clauses})
		}
		for _, k := range l7 {
			found[k] = true
		}
	}
	if len(found) == 0 {
		return
	}
	names := strings.Join(slices.Sorted(maps.Keys(found)), ", ")
	if a.Action == security.Action_ALLOW {
		r.warn("ztunnel cannot evaluate %s (use a waypoint): ALLOW rules using them never match", names)
	} else {
		r.warn("ztunnel cannot evaluate %s (use a waypoint): DENY rules are enforced without them, so they deny more", names)
	}
}
