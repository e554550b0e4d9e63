package l7

import (
	"maps"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// convertRule converts one validated rule. unsupported names the fields the waypoint
// cannot evaluate; with any, an ALLOW rule is not kept (it never matches) and a DENY
// rule is kept without them: a source or operation left empty, or a dropped `when`,
// no longer narrows the rule.
func convertRule(r *securityv1beta1.Rule, namespace string, deny bool) (out Rule, unsupported []string, keep bool) {
	bad := map[string]bool{}
	anySource, anyOp := false, false
	for _, from := range r.GetFrom() {
		s := convertSource(from.GetSource(), namespace, bad)
		if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) == 0 {
			anySource = true
		}
		out.From = append(out.From, s)
	}
	for _, to := range r.GetTo() {
		op := convertOperation(to.GetOperation(), bad)
		if len(op.Hosts)+len(op.NotHosts)+len(op.Ports)+len(op.NotPorts)+len(op.Methods)+len(op.NotMethods)+
			len(op.Paths)+len(op.NotPaths) == 0 {
			anyOp = true
		}
		out.To = append(out.To, op)
	}
	for _, w := range r.GetWhen() {
		if c, ok := convertCondition(w); ok {
			out.When = append(out.When, c)
		} else {
			bad[w.GetKey()] = true
		}
	}
	unsupported = slices.Sorted(maps.Keys(bad))
	if len(unsupported) > 0 && !deny {
		return Rule{}, unsupported, false
	}
	// Only a DENY rule can get here with fields removed; an empty source or operation
	// (one that held only removed fields) matches everything, so its list does too.
	if anySource {
		out.From = nil
	}
	if anyOp {
		out.To = nil
	}
	return out, unsupported, true
}

// convertSource keeps principals and namespaces (and serviceAccounts as principals
// "*/ns/<ns>/sa/<sa>", any trust domain); it marks the fields it cannot keep.
func convertSource(s *securityv1beta1.Source, namespace string, bad map[string]bool) Source {
	var out Source
	out.Principals = patterns(s.GetPrincipals(), "principals", bad)
	out.NotPrincipals = patterns(s.GetNotPrincipals(), "notPrincipals", bad)
	out.Namespaces = patterns(s.GetNamespaces(), "namespaces", bad)
	out.NotNamespaces = patterns(s.GetNotNamespaces(), "notNamespaces", bad)
	out.Principals = append(out.Principals, accountPrincipals(s.GetServiceAccounts(), namespace)...)
	out.NotPrincipals = append(out.NotPrincipals, accountPrincipals(s.GetNotServiceAccounts(), namespace)...)
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"ipBlocks", s.GetIpBlocks()}, {"notIpBlocks", s.GetNotIpBlocks()},
		{"remoteIpBlocks", s.GetRemoteIpBlocks()}, {"notRemoteIpBlocks", s.GetNotRemoteIpBlocks()},
		{"requestPrincipals", s.GetRequestPrincipals()}, {"notRequestPrincipals", s.GetNotRequestPrincipals()},
		{"trustDomains", s.GetTrustDomains()}, {"notTrustDomains", s.GetNotTrustDomains()},
	} {
		if len(f.vals) > 0 {
			bad[f.name] = true
		}
	}
	return out
}

// accountPrincipals turns "sa" (in namespace) or "ns/sa" into principal suffixes.
func accountPrincipals(accounts []string, namespace string) []string {
	var out []string
	for _, a := range accounts {
		ns, sa, ok := strings.Cut(a, "/")
		if !ok {
			ns, sa = namespace, a
		}
		out = append(out, "*/ns/"+ns+"/sa/"+sa)
	}
	return out
}

func convertOperation(op *securityv1beta1.Operation, bad map[string]bool) Operation {
	return Operation{
		Hosts:      patterns(op.GetHosts(), "hosts", bad),
		NotHosts:   patterns(op.GetNotHosts(), "notHosts", bad),
		Ports:      slices.Clone(op.GetPorts()),
		NotPorts:   slices.Clone(op.GetNotPorts()),
		Methods:    patterns(op.GetMethods(), "methods", bad),
		NotMethods: patterns(op.GetNotMethods(), "notMethods", bad),
		Paths:      patterns(op.GetPaths(), "paths", bad),
		NotPaths:   patterns(op.GetNotPaths(), "notPaths", bad),
	}
}

// convertCondition keeps a `when` on request.headers[<name>] (name lowercased) whose
// values are supported patterns.
func convertCondition(w *securityv1beta1.Condition) (Condition, bool) {
	k := w.GetKey()
	name, ok := strings.CutPrefix(k, "request.headers[")
	if !ok || !strings.HasSuffix(name, "]") {
		return Condition{}, false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "]"))
	if checkHeaderName(name, true) != nil {
		return Condition{}, false
	}
	bad := map[string]bool{}
	c := Condition{
		Key:       "request.headers[" + name + "]",
		Values:    patterns(w.GetValues(), "values", bad),
		NotValues: patterns(w.GetNotValues(), "notValues", bad),
	}
	return c, len(bad) == 0
}

// patterns copies values matched Istio's way ("*", "prefix*", "*suffix" or exact); any
// other use of '*', or a path template ('{'), marks the field unsupported (nil).
func patterns(vals []string, field string, bad map[string]bool) []string {
	for _, v := range vals {
		inner := strings.TrimSuffix(strings.TrimPrefix(v, "*"), "*")
		if v != "*" && (strings.Contains(inner, "*") || (strings.HasPrefix(v, "*") && strings.HasSuffix(v, "*")) ||
			strings.ContainsAny(v, "{}")) {
			bad[field] = true
			return nil
		}
	}
	return slices.Clone(vals)
}
