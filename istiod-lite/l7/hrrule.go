package l7

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// hrConverter translates the rules of one HTTPRoute for one parent service port.
type hrConverter struct {
	ix       *index
	hr       *gatewayv1.HTTPRoute
	st       *objectState
	fallback Backend // the parent port's own cluster
}

// rule translates rule ri into one route per match (a rule without matches matches
// every request). A rule the waypoint cannot honour keeps its matches and answers 500.
func (c *hrConverter) rule(ri int, rule *gatewayv1.HTTPRouteRule) []routeEntry {
	action, prefixOnly, err := c.action(ri, rule)
	if err == nil && prefixOnly && (len(rule.Matches) != 1 || !isPrefixMatch(&rule.Matches[0])) {
		err = errors.New("ReplacePrefixMatch needs exactly one PathPrefix match")
	}
	if err != nil {
		c.st.accepted.fail(ReasonUnsupportedValue, "rules[%d]: %v: its requests get 500", ri, err)
	}
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.HTTPRouteMatch{{}}
	}
	var out []routeEntry
	for mi := range matches {
		match, prec, merr := gatewayMatch(&matches[mi])
		if merr != nil {
			c.st.accepted.fail(ReasonUnsupportedValue, "rules[%d].matches[%d]: %v: match dropped", ri, mi, merr)
			continue
		}
		r := cloneRoute(action)
		r.Name = routeName(KindHTTPRoute, c.hr.Namespace, c.hr.Name, ri, mi)
		r.Match = match
		if err != nil {
			failRoute(&r, c.fallback)
		}
		prec.created, prec.namespace, prec.name = c.hr.CreationTimestamp.Time, c.hr.Namespace, c.hr.Name
		prec.rule, prec.match = ri, mi
		out = append(out, routeEntry{prec: prec, route: r})
	}
	return out
}

func isPrefixMatch(m *gatewayv1.HTTPRouteMatch) bool {
	return m.Path == nil || m.Path.Type == nil || *m.Path.Type == gatewayv1.PathMatchPathPrefix
}

// action translates a rule's filters, backends, timeouts and retry. prefixOnly is true
// when a filter replaces the matched prefix (valid with one PathPrefix match only).
func (c *hrConverter) action(ri int, rule *gatewayv1.HTTPRouteRule) (r Route, prefixOnly bool, err error) {
	if rule.SessionPersistence != nil {
		return r, false, errors.New("sessionPersistence is not supported")
	}
	seen := map[gatewayv1.HTTPRouteFilterType]bool{}
	for fi := range rule.Filters {
		f := &rule.Filters[fi]
		if seen[f.Type] && f.Type != gatewayv1.HTTPRouteFilterRequestMirror {
			return r, false, fmt.Errorf("filters[%d]: more than one %s filter", fi, f.Type)
		}
		seen[f.Type] = true
		p, err := c.filter(ri, fi, f, &r)
		if err != nil {
			return r, false, fmt.Errorf("filters[%d]: %w", fi, err)
		}
		prefixOnly = prefixOnly || p
	}
	switch {
	case r.Redirect != nil && r.Rewrite != nil:
		return r, false, errors.New("RequestRedirect and URLRewrite cannot be combined")
	case r.Redirect != nil && len(r.Mirrors) > 0:
		return r, false, errors.New("RequestRedirect with RequestMirror is not supported")
	case r.Redirect != nil:
		return r, prefixOnly, nil // a redirect forwards nothing: backends, timeouts and retries do not apply
	}
	var backendTimeout time.Duration
	if t := rule.Timeouts; t != nil {
		if r.Timeout, err = gatewayDuration(t.Request); err != nil {
			return r, false, fmt.Errorf("timeouts.request: %w", err)
		}
		if backendTimeout, err = gatewayDuration(t.BackendRequest); err != nil {
			return r, false, fmt.Errorf("timeouts.backendRequest: %w", err)
		}
	}
	r.Retry = c.retry(ri, rule.Retry)
	switch {
	case backendTimeout > 0 && r.Retry != nil:
		r.Retry.PerTryTimeout = backendTimeout
	case backendTimeout > 0 && (r.Timeout == 0 || backendTimeout < r.Timeout):
		r.Timeout = backendTimeout // one attempt: the backend request is the request
	}
	var w weighted
	for bi, br := range rule.BackendRefs {
		if len(br.Filters) > 0 {
			return r, false, fmt.Errorf("backendRefs[%d].filters are not supported", bi)
		}
		b, ok := c.backend(fmt.Sprintf("rules[%d].backendRefs[%d]", ri, bi), br.BackendObjectReference)
		weight := uint32(1)
		if br.Weight != nil {
			weight = uint32(max(*br.Weight, 0))
		}
		w.add(b, weight, ok)
	}
	w.apply(&r, c.fallback) // no backendRefs: 500, as Gateway API specifies
	return r, prefixOnly, nil
}

// filter applies one filter to r.
func (c *hrConverter) filter(ri, fi int, f *gatewayv1.HTTPRouteFilter, r *Route) (prefixOnly bool, err error) {
	switch f.Type {
	case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
		r.RequestHeaders, err = headerFilter(f.RequestHeaderModifier)
	case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
		r.ResponseHeaders, err = headerFilter(f.ResponseHeaderModifier)
	case gatewayv1.HTTPRouteFilterRequestRedirect:
		r.Redirect, prefixOnly, err = redirectFilter(f.RequestRedirect)
	case gatewayv1.HTTPRouteFilterURLRewrite:
		r.Rewrite, prefixOnly, err = rewriteFilter(f.URLRewrite)
	case gatewayv1.HTTPRouteFilterRequestMirror:
		if m, ok := c.mirror(fmt.Sprintf("rules[%d].filters[%d].requestMirror", ri, fi), f.RequestMirror); ok {
			r.Mirrors = append(r.Mirrors, m)
		}
	default:
		err = fmt.Errorf("filter type %q is not supported", f.Type)
	}
	return prefixOnly, err
}

func headerFilter(f *gatewayv1.HTTPHeaderFilter) (HeaderMutation, error) {
	if f == nil {
		return HeaderMutation{}, errors.New("header modifier not set")
	}
	conv := func(hs []gatewayv1.HTTPHeader) []Header {
		out := make([]Header, 0, len(hs))
		for _, h := range hs {
			out = append(out, Header{Name: string(h.Name), Value: h.Value})
		}
		return out
	}
	return mutation(conv(f.Set), conv(f.Add), f.Remove)
}

func redirectFilter(f *gatewayv1.HTTPRequestRedirectFilter) (*Redirect, bool, error) {
	if f == nil {
		return nil, false, errors.New("requestRedirect not set")
	}
	rd := &Redirect{StatusCode: 302}
	if f.Scheme != nil {
		rd.Scheme = strings.ToLower(*f.Scheme)
		if rd.Scheme != "http" && rd.Scheme != "https" {
			return nil, false, fmt.Errorf("redirect scheme %q is not supported", *f.Scheme)
		}
	}
	if f.Hostname != nil {
		if rd.Host = string(*f.Hostname); rd.Host == "" || checkHeaderValue(rd.Host) != nil || strings.ContainsAny(rd.Host, "/ ") {
			return nil, false, fmt.Errorf("invalid redirect hostname %q", rd.Host)
		}
	}
	if f.Port != nil {
		if *f.Port < 1 || *f.Port > 65535 {
			return nil, false, fmt.Errorf("invalid redirect port %d", *f.Port)
		}
		rd.Port = uint32(*f.Port)
	}
	if f.StatusCode != nil {
		switch *f.StatusCode {
		case 301, 302, 303, 307, 308:
			rd.StatusCode = *f.StatusCode
		default:
			return nil, false, fmt.Errorf("redirect status code %d is not supported", *f.StatusCode)
		}
	}
	full, prefix, isPrefix, err := pathModifier(f.Path)
	if err != nil {
		return nil, false, err
	}
	rd.Path = full
	if isPrefix {
		rd.PrefixRewrite = prefix
		if prefix == "" {
			rd.PrefixRewrite = "/"
		}
	}
	return rd, isPrefix, nil
}

func rewriteFilter(f *gatewayv1.HTTPURLRewriteFilter) (*Rewrite, bool, error) {
	if f == nil {
		return nil, false, errors.New("urlRewrite not set")
	}
	rw := &Rewrite{}
	if f.Hostname != nil {
		if rw.Host = string(*f.Hostname); rw.Host == "" || checkHeaderValue(rw.Host) != nil || strings.ContainsAny(rw.Host, "/ ") {
			return nil, false, fmt.Errorf("invalid rewrite hostname %q", rw.Host)
		}
	}
	full, prefix, isPrefix, err := pathModifier(f.Path)
	if err != nil {
		return nil, false, err
	}
	rw.Path, rw.PrefixRewrite, rw.PrefixSet = full, prefix, isPrefix
	if *rw == (Rewrite{}) {
		return nil, false, nil
	}
	return rw, isPrefix, nil
}

// pathModifier reads a ReplaceFullPath (full) or ReplacePrefixMatch (prefix, isPrefix).
func pathModifier(p *gatewayv1.HTTPPathModifier) (full, prefix string, isPrefix bool, err error) {
	if p == nil {
		return "", "", false, nil
	}
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			return "", "", false, errors.New("replaceFullPath not set")
		}
		return *p.ReplaceFullPath, "", false, checkPath(*p.ReplaceFullPath)
	case gatewayv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			return "", "", false, errors.New("replacePrefixMatch not set")
		}
		if v := *p.ReplacePrefixMatch; v != "" {
			err = checkPath(v)
		}
		return "", *p.ReplacePrefixMatch, true, err
	}
	return "", "", false, fmt.Errorf("path modifier type %q is not supported", p.Type)
}

// mirror translates a RequestMirror filter: percent, else fraction (denominator 100 by
// default), else 100 %. A mirror that cannot be honoured (bad fraction, unresolved
// backend) is dropped and reported; mirrored copies never affect the response.
func (c *hrConverter) mirror(at string, f *gatewayv1.HTTPRequestMirrorFilter) (Mirror, bool) {
	if f == nil {
		c.st.accepted.fail(ReasonUnsupportedValue, "%s: not set: no mirror", at)
		return Mirror{}, false
	}
	percent := 100.0
	switch {
	case f.Percent != nil && f.Fraction != nil:
		c.st.accepted.fail(ReasonUnsupportedValue, "%s: percent and fraction are exclusive: no mirror", at)
		return Mirror{}, false
	case f.Percent != nil:
		percent = float64(*f.Percent)
	case f.Fraction != nil:
		den := int32(100)
		if f.Fraction.Denominator != nil {
			den = *f.Fraction.Denominator
		}
		if den <= 0 || f.Fraction.Numerator < 0 || f.Fraction.Numerator > den {
			c.st.accepted.fail(ReasonUnsupportedValue, "%s: invalid fraction: no mirror", at)
			return Mirror{}, false
		}
		percent = float64(f.Fraction.Numerator) / float64(den) * 100
	}
	if percent < 0 || percent > 100 {
		c.st.accepted.fail(ReasonUnsupportedValue, "%s: percent %v is not within 0-100: no mirror", at, percent)
		return Mirror{}, false
	}
	b, ok := c.backend(at+".backendRef", f.BackendRef)
	if !ok || percent == 0 {
		return Mirror{}, false
	}
	return Mirror{Backend: b, Percent: percent}, true
}

// backend resolves a backendRef to a Service port in the route's namespace, reporting
// ResolvedRefs False when it cannot.
func (c *hrConverter) backend(at string, ref gatewayv1.BackendObjectReference) (Backend, bool) {
	group, kind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns, name := c.hr.Namespace, string(ref.Name)
	switch {
	case (group != "" && group != "core") || kind != "Service":
		c.st.resolved.fail(ReasonInvalidKind, "%s: %s %q is not supported: only Services", at, kind, group)
	case ref.Namespace != nil && *ref.Namespace != "" && string(*ref.Namespace) != ns:
		c.st.resolved.fail(ReasonRefNotPermitted, "%s: Service %s/%s is in another namespace (ReferenceGrant is not supported)", at, *ref.Namespace, name)
	case ref.Port == nil || *ref.Port < 1 || *ref.Port > 65535:
		c.st.resolved.fail(ReasonBackendNotFound, "%s: a Service backend needs a port", at)
	default:
		svc := c.ix.services[types.NamespacedName{Namespace: ns, Name: name}]
		if svc == nil {
			c.st.resolved.fail(ReasonBackendNotFound, "%s: Service %s/%s not found", at, ns, name)
			return Backend{}, false
		}
		if _, ok := servicePort(svc, uint32(*ref.Port)); !ok {
			c.st.resolved.fail(ReasonBackendNotFound, "%s: Service %s/%s has no TCP port %d", at, ns, name, *ref.Port)
			return Backend{}, false
		}
		return Backend{Hostname: c.ix.hostname(ns, name), Port: uint32(*ref.Port)}, true
	}
	return Backend{}, false
}

// retry translates a retry policy: attempts (default 2; 0 disables retries), codes
// (default 500, 502, 503, 504) as retriable-status-codes, plus connect-failure and
// refused-stream. backoff is ignored (the engine backs off 25 ms), with a note.
func (c *hrConverter) retry(ri int, rr *gatewayv1.HTTPRouteRetry) *Retry {
	if rr == nil {
		return nil
	}
	if rr.Backoff != nil {
		c.st.accepted.note("rules[%d].retry.backoff is ignored", ri)
	}
	attempts := 2
	if rr.Attempts != nil {
		attempts = *rr.Attempts
	}
	if attempts <= 0 {
		return nil
	}
	r := &Retry{Attempts: uint32(min(attempts, 1000)), On: append([]string(nil), defaultRetryOn...)}
	for _, code := range rr.Codes {
		if code < 400 || code > 599 {
			c.st.accepted.fail(ReasonUnsupportedValue, "rules[%d].retry.codes: %d is not within 400-599: ignored", ri, code)
			continue
		}
		r.StatusCodes = append(r.StatusCodes, uint32(code))
	}
	if len(r.StatusCodes) == 0 {
		r.StatusCodes = []uint32{500, 502, 503, 504}
	}
	return r
}

// gatewayDuration parses a Gateway API duration ("1h2m3s4ms"); 0 when unset or "0s".
func gatewayDuration(d *gatewayv1.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return 0, fmt.Errorf("parse duration: %w", err)
	}
	if v < 0 {
		return 0, errNegativeDuration
	}
	return v, nil
}
