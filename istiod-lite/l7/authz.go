package l7

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/istiod-lite/policy"
)

// attachPolicies translates every AuthorizationPolicy with targetRef/targetRefs (F-SEC-4)
// and attaches it to the waypoint Gateways and bound Services it targets in its own
// namespace. Policies with a selector are ztunnel's (istiod-lite/policy), not these.
func (ix *index) attachPolicies() {
	for _, ap := range ix.aps {
		spec := &ap.Spec
		refs := spec.GetTargetRefs()
		if spec.GetTargetRef() != nil {
			refs = append([]*typev1beta1.PolicyTargetReference{spec.GetTargetRef()}, refs...)
		}
		if spec.GetSelector() != nil || len(refs) == 0 {
			continue
		}
		st := ix.status.of(KindAuthorizationPolicy, ap, "")
		pol, enforced := ix.convertPolicy(ap, &st.accepted)
		attached := false
		for i, ref := range refs {
			if list := ix.policyTarget(ap.Namespace, i, ref, &st.accepted); list != nil && enforced {
				if !slices.ContainsFunc(*list, func(p Policy) bool { return p.Namespace == pol.Namespace && p.Name == pol.Name }) {
					*list = append(*list, pol)
				}
				attached = true
			}
		}
		if !attached && enforced {
			st.accepted.fail(ReasonTargetNotFound, "no target is a waypoint or a service a waypoint serves: not enforced")
		}
	}
	byName := func(a, b Policy) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}
	for _, w := range ix.waypoints {
		slices.SortFunc(w.Policies, byName)
	}
	for _, b := range ix.boundList {
		slices.SortFunc(b.model.Policies, byName)
	}
}

// policyTarget resolves one targetRef to the policy list it adds to: a waypoint
// Gateway's (group gateway.networking.k8s.io, kind Gateway) or a bound Service's
// (group "" or core, kind Service), in the policy's namespace; nil when none.
func (ix *index) policyTarget(ns string, i int, ref *typev1beta1.PolicyTargetReference, c *cond) *[]Policy {
	if ref == nil {
		c.fail(ReasonInvalid, "targetRefs[%d]: empty", i)
		return nil
	}
	if ref.GetNamespace() != "" && ref.GetNamespace() != ns {
		c.fail(ReasonUnsupportedValue, "targetRefs[%d]: a target in another namespace is not supported", i)
		return nil
	}
	name := types.NamespacedName{Namespace: ns, Name: ref.GetName()}
	switch group, kind := ref.GetGroup(), ref.GetKind(); {
	case group == gatewayv1.GroupName && kind == "Gateway":
		if w := ix.waypoints[name]; w != nil {
			return &w.Policies
		}
		c.fail(ReasonTargetNotFound, "targetRefs[%d]: Gateway %s is not a waypoint", i, name)
	case (group == "" || group == "core") && kind == "Service":
		if b := ix.bound[name]; b != nil {
			return &b.model.Policies
		}
		c.fail(ReasonTargetNotFound, "targetRefs[%d]: Service %s is not served by a waypoint", i, name)
	default:
		c.fail(ReasonUnsupportedValue, "targetRefs[%d]: kind %s of group %q is not supported", i, kind, group)
	}
	return nil
}

// convertPolicy reduces a targeted AuthorizationPolicy to what the waypoint enforces
// (issue 5 §3), failing closed; enforced is false for policies that never change a
// decision (AUDIT, dry-run), which are reported and not attached.
//
//   - A policy Istio's webhook rejects (istiod-lite/policy's validation) is enforced as
//     ALLOW nothing or DENY everything.
//   - CUSTOM (external authorization) is not supported: enforced as DENY of what its
//     rules match.
//   - In each rule, fields the waypoint cannot evaluate (ipBlocks, remoteIpBlocks,
//     requestPrincipals, trustDomains, path templates, mid-value wildcards, `when` keys
//     other than request.headers[…]) make an ALLOW rule never match (it is dropped) and
//     are removed from a DENY rule (it matches regardless of them).
func (ix *index) convertPolicy(ap *securityv1.AuthorizationPolicy, c *cond) (Policy, bool) {
	spec := &ap.Spec
	p := Policy{Namespace: ap.Namespace, Name: ap.Name, Action: ActionDeny}
	switch spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		p.Action = ActionAllow
	case securityv1beta1.AuthorizationPolicy_DENY:
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		c.fail(ReasonUnsupportedValue, "the AUDIT action is not supported: not enforced (it never changes a decision)")
		return p, false
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		c.fail(ReasonUnsupportedValue, "the CUSTOM action (external authorization) is not supported: its rules are enforced as DENY")
	default:
		c.fail(ReasonInvalid, "unknown action %d: enforced as DENY of every request", int32(spec.GetAction()))
		p.Rules = []Rule{{}}
		return p, true
	}
	if v := ap.Annotations[policy.AnnotationDryRun]; v != "" {
		if dry, err := strconv.ParseBool(v); err != nil {
			c.note("annotation %s=%q is not a boolean: the policy is enforced", policy.AnnotationDryRun, v)
		} else if dry {
			c.fail(ReasonUnsupportedValue, "dry-run policies are not enforced")
			return p, false
		}
	}
	if problems := validate(ap); len(problems) > 0 {
		for _, m := range problems {
			c.fail(ReasonInvalid, "%s", m)
		}
		if p.Action == ActionDeny {
			p.Rules = []Rule{{}}
			c.note("invalid: enforced as DENY of every request")
		} else {
			c.note("invalid: enforced as ALLOW of nothing")
		}
		return p, true
	}
	deny := p.Action == ActionDeny
	for i, r := range spec.GetRules() {
		rule, unsupported, keep := convertRule(r, ap.Namespace, deny)
		if len(unsupported) > 0 {
			what := "the ALLOW rule never matches"
			if deny {
				what = "the DENY rule is enforced without them (it denies more)"
			}
			c.fail(ReasonUnsupportedValue, "rules[%d]: %s not supported by the waypoint: %s", i, strings.Join(unsupported, ", "), what)
		}
		if keep {
			p.Rules = append(p.Rules, rule)
		}
	}
	return p, true
}

// validate returns the problems Istio's webhook would reject the policy for, as
// istiod-lite/policy finds them (its targets and dry-run annotation set aside, and
// CUSTOM checked as DENY).
func validate(ap *securityv1.AuthorizationPolicy) []string {
	cp := ap.DeepCopy()
	cp.Spec.TargetRef, cp.Spec.TargetRefs, cp.Spec.Selector = nil, nil, nil
	delete(cp.Annotations, policy.AnnotationDryRun)
	if cp.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM {
		cp.Spec.Action, cp.Spec.ActionDetail = securityv1beta1.AuthorizationPolicy_DENY, nil
	}
	_, problems := policy.ConvertAuthorizationPolicy(cp, policy.Options{})
	var out []string
	for _, pr := range problems {
		if pr.Invalid {
			out = append(out, pr.Message)
		}
	}
	return out
}
