package policy

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	securityv1beta1 "istio.io/api/security/v1beta1"
	"istio.io/istio/pkg/workloadapi/security"
)

// l4WhenKeys are the `when` attributes ztunnel can evaluate, as Istio's ambient
// controller lists them. Any other valid key is an HTTP attribute for ztunnel.
var l4WhenKeys = map[string]bool{
	"source.ip":        true,
	"source.namespace": true,
	"source.principal": true,
	"destination.ip":   true,
	"destination.port": true,
}

// convertRule converts one validated rule into the Rules (clauses, AND-ed) of one Group,
// and the names of the attributes ztunnel cannot evaluate. keep is false when the rule
// must not become a group: an ALLOW rule with such attributes never matches (Istio omits
// it). In a DENY rule those attributes are dropped, so the rule matches more broadly; a
// clause left with nothing to match is omitted, and a group with no clauses matches
// every connection (ztunnel: an empty Rules list matches).
func convertRule(action security.Action, rule *securityv1beta1.Rule, namespace string) (rules []*security.Rules, l7 []string, keep bool) {
	unsupported := map[string]bool{}
	var clauses []*security.Rules
	if len(rule.To) > 0 {
		ms := make([]*security.Match, 0, len(rule.To))
		for _, to := range rule.To {
			op := to.GetOperation()
			markHTTPOperation(unsupported, op)
			ms = append(ms, &security.Match{
				DestinationPorts:    ports(op.GetPorts()),
				NotDestinationPorts: ports(op.GetNotPorts()),
			})
		}
		clauses = append(clauses, &security.Rules{Matches: ms})
	}
	if len(rule.From) > 0 {
		ms := make([]*security.Match, 0, len(rule.From))
		for _, from := range rule.From {
			src := from.GetSource()
			markHTTPSource(unsupported, src)
			ms = append(ms, &security.Match{
				SourceIps:          addresses(src.GetIpBlocks()),
				NotSourceIps:       addresses(src.GetNotIpBlocks()),
				Namespaces:         stringMatches(src.GetNamespaces()),
				NotNamespaces:      stringMatches(src.GetNotNamespaces()),
				ServiceAccounts:    serviceAccounts(src.GetServiceAccounts(), namespace),
				NotServiceAccounts: serviceAccounts(src.GetNotServiceAccounts(), namespace),
				Principals:         stringMatches(src.GetPrincipals()),
				NotPrincipals:      stringMatches(src.GetNotPrincipals()),
			})
		}
		clauses = append(clauses, &security.Rules{Matches: ms})
	}
	for _, when := range rule.When {
		if !l4WhenKeys[when.Key] {
			unsupported[when.Key] = true
			continue
		}
		clauses = append(clauses, &security.Rules{Matches: []*security.Match{whenMatch(when)}})
	}
	l7 = slices.Sorted(maps.Keys(unsupported))
	if action == security.Action_ALLOW && len(l7) > 0 {
		return nil, l7, false
	}
	rules = make([]*security.Rules, 0, len(clauses))
	for _, c := range clauses {
		// A match emptied by dropping HTTP attributes stands for "any connection": the
		// clause (an OR of its matches) then always holds and is left out, because
		// ztunnel never matches an empty Match.
		if !slices.ContainsFunc(c.Matches, isEmptyMatch) {
			rules = append(rules, c)
		}
	}
	return rules, l7, true
}

// whenMatch converts an L4 `when` condition: values into the positive field of its
// attribute, notValues into the negative one.
func whenMatch(c *securityv1beta1.Condition) *security.Match {
	m := &security.Match{}
	switch c.Key {
	case "source.ip":
		m.SourceIps, m.NotSourceIps = addresses(c.Values), addresses(c.NotValues)
	case "source.namespace":
		m.Namespaces, m.NotNamespaces = stringMatches(c.Values), stringMatches(c.NotValues)
	case "source.principal":
		m.Principals, m.NotPrincipals = stringMatches(c.Values), stringMatches(c.NotValues)
	case "destination.ip":
		m.DestinationIps, m.NotDestinationIps = addresses(c.Values), addresses(c.NotValues)
	case "destination.port":
		m.DestinationPorts, m.NotDestinationPorts = ports(c.Values), ports(c.NotValues)
	}
	return m
}

// markHTTPOperation records the operation fields only a waypoint can evaluate.
func markHTTPOperation(found map[string]bool, op *securityv1beta1.Operation) {
	mark(found, "hosts", op.GetHosts())
	mark(found, "notHosts", op.GetNotHosts())
	mark(found, "methods", op.GetMethods())
	mark(found, "notMethods", op.GetNotMethods())
	mark(found, "paths", op.GetPaths())
	mark(found, "notPaths", op.GetNotPaths())
}

// markHTTPSource records the source fields ztunnel cannot evaluate: request principals
// and remote IPs (as Istio), and trust domains, which the Authorization proto cannot
// carry (Istio drops them silently, widening an ALLOW rule).
func markHTTPSource(found map[string]bool, s *securityv1beta1.Source) {
	mark(found, "remoteIpBlocks", s.GetRemoteIpBlocks())
	mark(found, "notRemoteIpBlocks", s.GetNotRemoteIpBlocks())
	mark(found, "requestPrincipals", s.GetRequestPrincipals())
	mark(found, "notRequestPrincipals", s.GetNotRequestPrincipals())
	mark(found, "trustDomains", s.GetTrustDomains())
	mark(found, "notTrustDomains", s.GetNotTrustDomains())
}

func mark(found map[string]bool, name string, vals []string) {
	if len(vals) > 0 {
		found[name] = true
	}
}

var emptyMatch = &security.Match{}

func isEmptyMatch(m *security.Match) bool { return proto.Equal(m, emptyMatch) }

// stringMatches converts principal and namespace patterns as Istio does: "*" is
// presence, "*x" a suffix, "x*" a prefix, anything else exact.
func stringMatches(vals []string) []*security.StringMatch {
	if len(vals) == 0 {
		return nil
	}
	out := make([]*security.StringMatch, 0, len(vals))
	for _, v := range vals {
		var sm *security.StringMatch
		switch {
		case v == "*":
			sm = &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}
		case strings.HasPrefix(v, "*"):
			sm = &security.StringMatch{MatchType: &security.StringMatch_Suffix{Suffix: v[1:]}}
		case strings.HasSuffix(v, "*"):
			sm = &security.StringMatch{MatchType: &security.StringMatch_Prefix{Prefix: v[:len(v)-1]}}
		default:
			sm = &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: v}}
		}
		out = append(out, sm)
	}
	return out
}

// serviceAccounts converts "ns/sa" or "sa" (in the policy's namespace) as Istio does.
func serviceAccounts(vals []string, namespace string) []*security.ServiceAccountMatch {
	if len(vals) == 0 {
		return nil
	}
	out := make([]*security.ServiceAccountMatch, 0, len(vals))
	for _, v := range vals {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = namespace, v
		}
		out = append(out, &security.ServiceAccountMatch{Namespace: ns, ServiceAccount: sa})
	}
	return out
}

// ports converts validated port strings; nil for none.
func ports(vals []string) []uint32 {
	if len(vals) == 0 {
		return nil
	}
	out := make([]uint32, 0, len(vals))
	for _, v := range vals {
		if p, ok := parsePort(v); ok {
			out = append(out, p)
		}
	}
	return out
}

// addresses converts validated IPs and CIDRs into address bytes (4 or 16) and a prefix
// length; nil for none.
func addresses(vals []string) []*security.Address {
	if len(vals) == 0 {
		return nil
	}
	out := make([]*security.Address, 0, len(vals))
	for _, v := range vals {
		if p, ok := parseIPBlock(v); ok {
			out = append(out, &security.Address{Address: p.Addr().AsSlice(), Length: uint32(p.Bits())})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
