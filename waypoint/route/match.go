package route

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

type pathKind int

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparatedPrefix
)

// matcher is a compiled RouteMatch.
type matcher struct {
	kind          pathKind
	value         string // prefix, path or path-separated prefix
	re            *regexp.Regexp
	caseSensitive bool
	headers       []*HeaderMatch
	query         []queryMatch
}

type queryMatch struct {
	name    string
	str     *StringMatch // nil: presence match
	present bool
}

func compileMatch(m *routev3.RouteMatch) (matcher, error) {
	if m == nil {
		return matcher{}, fmt.Errorf("match is required")
	}
	out := matcher{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.value = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return matcher{}, err
		}
		out.kind, out.re = pathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		v := p.PathSeparatedPrefix
		if v == "" || !strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || strings.ContainsAny(v, "?#") {
			return matcher{}, fmt.Errorf("path_separated_prefix %q: must start and not end with / and hold no ? or #", v)
		}
		out.kind, out.value = pathSeparatedPrefix, v
	default:
		return matcher{}, fmt.Errorf("one of prefix, path, safe_regex, path_separated_prefix is required")
	}
	if !out.caseSensitive {
		out.value = lowerASCII(out.value)
	}
	for _, h := range m.GetHeaders() {
		hm, err := CompileHeaderMatch(h)
		if err != nil {
			return matcher{}, fmt.Errorf("headers: %w", err)
		}
		out.headers = append(out.headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatch(q)
		if err != nil {
			return matcher{}, fmt.Errorf("query_parameters: %w", err)
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

func compileQueryMatch(q *routev3.QueryParameterMatcher) (queryMatch, error) {
	if q.GetName() == "" {
		return queryMatch{}, fmt.Errorf("name is required")
	}
	qm := queryMatch{name: q.GetName(), present: true}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := CompileStringMatch(s.StringMatch)
		if err != nil {
			return queryMatch{}, fmt.Errorf("%q: %w", q.GetName(), err)
		}
		qm.str = sm
	case *routev3.QueryParameterMatcher_PresentMatch:
		qm.present = s.PresentMatch
	}
	return qm, nil
}

// matches applies Envoy's RouteMatch semantics to r, whose :path is full:
// prefix against the whole :path, exact path, regex and path-separated
// prefix against the path without query; then every header and query
// parameter matcher.
func (m *matcher) matches(r *http.Request, full string) bool {
	if matchedPathLen(m, full) < 0 {
		return false
	}
	for _, h := range m.headers {
		v, ok := headerValue(r, h.Name, h.key)
		if !h.Match(v, ok) {
			return false
		}
	}
	if len(m.query) > 0 {
		params := parseQuery(full)
		for _, q := range m.query {
			v, ok := params[q.name]
			if q.str == nil {
				if ok != q.present {
					return false
				}
			} else if !ok || !q.str.Match(v) {
				return false
			}
		}
	}
	return true
}

// matchedPathLen returns how many leading bytes of the :path full the path
// specifier matched (the part a prefix_rewrite replaces), or -1.
func matchedPathLen(m *matcher, full string) int {
	path := stripQuery(full)
	cmp := path
	if !m.caseSensitive {
		cmp = lowerASCII(path)
	}
	switch m.kind {
	case pathPrefix:
		c := full
		if !m.caseSensitive {
			c = lowerASCII(full)
		}
		if strings.HasPrefix(c, m.value) {
			return len(m.value)
		}
	case pathExact:
		if cmp == m.value {
			return len(path)
		}
	case pathRegex:
		if m.re.MatchString(path) {
			return len(path)
		}
	case pathSeparatedPrefix:
		if strings.HasPrefix(cmp, m.value) && (len(cmp) == len(m.value) || cmp[len(m.value)] == '/') {
			return len(m.value)
		}
	}
	return -1
}

// requestPath is r's :path: the escaped path and the query, as sent.
func requestPath(r *http.Request) string {
	u := r.URL
	p := u.EscapedPath()
	if u.Opaque != "" {
		p = u.Opaque
	}
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	return p
}

func stripQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// headerValue returns a header of r by lower-case name (key: its canonical form),
// with the HTTP/2 pseudo-headers Envoy exposes to matchers; several values are
// joined with ",", as Envoy.
func headerValue(r *http.Request, name, key string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":path":
		return requestPath(r), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vals := r.Header[key]
	if len(vals) == 0 {
		return "", false
	}
	return strings.Join(vals, ","), true
}

// parseQuery returns the first value of each query parameter of :path p,
// percent-decoded ('+' kept), as Envoy's query parameter matcher.
func parseQuery(p string) map[string]string {
	_, q, ok := strings.Cut(p, "?")
	if !ok {
		return nil
	}
	q, _, _ = strings.Cut(q, "#")
	out := make(map[string]string)
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, v = unescape(k), unescape(v)
		if _, seen := out[k]; !seen {
			out[k] = v
		}
	}
	return out
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
