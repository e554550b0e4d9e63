package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// validateSelector reports the selector problems Istio's webhook rejects: an empty label
// key or a '*' in a key or value. It returns false for such a selector.
func validateSelector(r *reporter, labels map[string]string) bool {
	ok := true
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		if k == "" {
			r.invalid("selector: empty label key (value %q)", v)
			ok = false
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			r.invalid("selector: wildcard not supported in %q", k+"="+v)
			ok = false
		}
	}
	return ok
}

// validateRules reports what Istio's ValidateAuthorizationPolicy rejects in the rules of
// an ALLOW or DENY policy. Rules with HTTP attributes are valid: they are converted (and
// warned about) by convertRule.
func validateRules(r *reporter, rules []*securityv1beta1.Rule) {
	for i, rule := range rules {
		if rule == nil {
			r.invalid("rules[%d]: rule must not be null", i)
			continue
		}
		if rule.From != nil && len(rule.From) == 0 {
			r.invalid("rules[%d]: from must not be empty", i)
		}
		for j, from := range rule.From {
			validateSource(r, fmt.Sprintf("rules[%d].from[%d]", i, j), from.GetSource())
		}
		if rule.To != nil && len(rule.To) == 0 {
			r.invalid("rules[%d]: to must not be empty", i)
		}
		for j, to := range rule.To {
			validateOperation(r, fmt.Sprintf("rules[%d].to[%d]", i, j), to.GetOperation())
		}
		for j, when := range rule.When {
			validateCondition(r, fmt.Sprintf("rules[%d].when[%d]", i, j), when)
		}
	}
}

func validateSource(r *reporter, at string, s *securityv1beta1.Source) {
	if s == nil {
		r.invalid("%s: source must be set", at)
		return
	}
	identity := len(s.Principals) + len(s.NotPrincipals) + len(s.Namespaces) + len(s.NotNamespaces)
	accounts := len(s.ServiceAccounts) + len(s.NotServiceAccounts)
	if identity > 0 && accounts > 0 {
		r.invalid("%s: serviceAccounts cannot be set with namespaces or principals", at)
	}
	if identity+accounts+len(s.RequestPrincipals)+len(s.NotRequestPrincipals)+len(s.IpBlocks)+len(s.NotIpBlocks)+
		len(s.RemoteIpBlocks)+len(s.NotRemoteIpBlocks)+len(s.TrustDomains)+len(s.NotTrustDomains) == 0 {
		r.invalid("%s: source must not be empty", at)
	}
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"principals", s.Principals}, {"notPrincipals", s.NotPrincipals},
		{"requestPrincipals", s.RequestPrincipals}, {"notRequestPrincipals", s.NotRequestPrincipals},
		{"namespaces", s.Namespaces}, {"notNamespaces", s.NotNamespaces},
	} {
		checkNonEmpty(r, at+"."+f.name, f.vals)
	}
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks},
		{"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks},
	} {
		checkIPs(r, at+"."+f.name, f.vals)
	}
	checkServiceAccounts(r, at+".serviceAccounts", s.ServiceAccounts)
	checkServiceAccounts(r, at+".notServiceAccounts", s.NotServiceAccounts)
	checkTrustDomains(r, at+".trustDomains", s.TrustDomains)
	checkTrustDomains(r, at+".notTrustDomains", s.NotTrustDomains)
}

func validateOperation(r *reporter, at string, op *securityv1beta1.Operation) {
	if op == nil {
		r.invalid("%s: operation must be set", at)
		return
	}
	if len(op.Ports)+len(op.NotPorts)+len(op.Hosts)+len(op.NotHosts)+len(op.Methods)+len(op.NotMethods)+
		len(op.Paths)+len(op.NotPaths) == 0 {
		r.invalid("%s: operation must not be empty", at)
	}
	checkPorts(r, at+".ports", op.Ports)
	checkPorts(r, at+".notPorts", op.NotPorts)
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"hosts", op.Hosts}, {"notHosts", op.NotHosts}, {"methods", op.Methods},
		{"notMethods", op.NotMethods}, {"paths", op.Paths}, {"notPaths", op.NotPaths},
	} {
		checkNonEmpty(r, at+"."+f.name, f.vals)
	}
}

func validateCondition(r *reporter, at string, c *securityv1beta1.Condition) {
	if c == nil {
		r.invalid("%s: condition must not be null", at)
		return
	}
	if c.Key == "" {
		r.invalid("%s: key must not be empty", at)
		return
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		r.invalid("%s: at least one of values or notValues must be set for key %s", at, c.Key)
		return
	}
	check, err := attributeCheck(c.Key)
	if err != "" {
		r.invalid("%s: %s", at, err)
		return
	}
	if checkNonEmpty(r, at+".values", c.Values) && checkNonEmpty(r, at+".notValues", c.NotValues) {
		check(r, at+".values", c.Values)
		check(r, at+".notValues", c.NotValues)
	}
}

// attributeCheck returns the value check of a `when` key, as Istio's ValidateAttribute,
// or why the key is not valid.
func attributeCheck(key string) (func(r *reporter, at string, vals []string), string) {
	none := func(*reporter, string, []string) {}
	switch {
	case key == "source.ip", key == "remote.ip", key == "destination.ip":
		return checkIPs, ""
	case key == "destination.port":
		return checkPorts, ""
	case key == "source.serviceAccount":
		return checkServiceAccounts, ""
	case key == "source.trustDomain":
		return checkTrustDomains, ""
	case key == "source.namespace", key == "source.principal", key == "request.auth.principal",
		key == "request.auth.audiences", key == "request.auth.presenter", key == "connection.sni":
		return none, ""
	case strings.HasPrefix(key, "request.headers"), strings.HasPrefix(key, "request.auth.claims"),
		strings.HasPrefix(key, "experimental.envoy.filters."):
		if !validMapKey(key) {
			return nil, fmt.Sprintf("bad key %q: want the form a[b]", key)
		}
		return none, ""
	}
	return nil, fmt.Sprintf("unknown attribute %q", key)
}

func validMapKey(key string) bool {
	open := strings.Index(key, "[")
	return strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2
}

func checkNonEmpty(r *reporter, at string, vals []string) bool {
	for _, v := range vals {
		if v == "" {
			r.invalid("%s: empty value not allowed", at)
			return false
		}
	}
	return true
}

func checkIPs(r *reporter, at string, vals []string) {
	for _, v := range vals {
		if _, ok := parseIPBlock(v); !ok {
			r.invalid("%s: bad IP address or CIDR %q", at, v)
		}
	}
}

func checkPorts(r *reporter, at string, vals []string) {
	for _, v := range vals {
		if _, ok := parsePort(v); !ok {
			r.invalid("%s: bad port %q: want 0-65535", at, v)
		}
	}
}

// checkServiceAccounts applies Istio's CheckServiceAccount: at most 16 values, each
// "sa" or "ns/sa" with no wildcard and at most 320 characters.
func checkServiceAccounts(r *reporter, at string, vals []string) {
	if len(vals) > 16 {
		r.invalid("%s: at most 16 values allowed", at)
	}
	for _, v := range vals {
		ns, sa, hasNS := strings.Cut(v, "/")
		switch {
		case v == "":
			r.invalid("%s: empty value not allowed", at)
		case strings.Contains(v, "*"):
			r.invalid("%s: wildcard not allowed in %q", at, v)
		case len(v) > 320:
			r.invalid("%s: value longer than 320 characters", at)
		case strings.Contains(sa, "/") || (hasNS && (ns == "" || sa == "")):
			r.invalid("%s: want serviceAccount or namespace/serviceAccount, got %q", at, v)
		}
	}
}

// checkTrustDomains applies Istio's CheckTrustDomainValues: non-empty, at most one '*'
// at the start or end (or "*" alone), no '/'.
func checkTrustDomains(r *reporter, at string, vals []string) {
	for _, v := range vals {
		n := strings.Count(v, "*")
		switch {
		case v == "":
			r.invalid("%s: empty value not allowed", at)
		case n > 1, n == 1 && !strings.HasPrefix(v, "*") && !strings.HasSuffix(v, "*"):
			r.invalid("%s: wildcard only allowed once, at the start or end: %q", at, v)
		case strings.Contains(v, "/"):
			r.invalid("%s: trust domain must not contain '/': %q", at, v)
		}
	}
}

// parsePort parses a port string as Istio does: a decimal number 0-65535.
func parsePort(s string) (uint32, bool) {
	p, err := strconv.ParseUint(s, 10, 32)
	if err != nil || p > 65535 {
		return 0, false
	}
	return uint32(p), true
}

// parseIPBlock parses an address ("10.0.0.1", full length) or a CIDR ("10.0.0.0/8") as
// Istio does. The address keeps any host bits, as Istio sends it; ztunnel masks it.
func parseIPBlock(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p, err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}
