package route

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http/httpguts"
)

// rewrite is a route's path and host rewrite.
type rewrite struct {
	prefix    string // prefix_rewrite ("" with hasPrefix false: none)
	hasPrefix bool
	re        *regexp.Regexp // regex_rewrite pattern (unanchored, all matches)
	template  string         // regex_rewrite substitution in Go Expand syntax
	host      string         // host_rewrite_literal
	match     *matcher
}

func compileRewrite(a *routev3.RouteAction, m *matcher) (rewrite, error) {
	rw := rewrite{match: m, host: a.GetHostRewriteLiteral()}
	if a.GetPrefixRewrite() != "" {
		if a.GetRegexRewrite() != nil {
			return rewrite{}, fmt.Errorf("prefix_rewrite and regex_rewrite are exclusive")
		}
		rw.prefix, rw.hasPrefix = a.GetPrefixRewrite(), true
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if rr.GetPattern().GetRegex() == "" {
			return rewrite{}, fmt.Errorf("regex_rewrite.pattern.regex is required")
		}
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return rewrite{}, fmt.Errorf("regex_rewrite.pattern: %w", err)
		}
		tmpl, err := re2Template(rr.GetSubstitution(), re.NumSubexp())
		if err != nil {
			return rewrite{}, fmt.Errorf("regex_rewrite.substitution: %w", err)
		}
		rw.re, rw.template = re, tmpl
	}
	if rw.host != "" && !httpguts.ValidHostHeader(rw.host) {
		return rewrite{}, fmt.Errorf("host_rewrite_literal %q: invalid host", rw.host)
	}
	return rw, nil
}

// re2Template converts an RE2 rewrite string (\0-\9 groups, \\ backslash) to
// Go's Expand syntax; other escapes and groups beyond the pattern's are
// errors, as RE2 rejects them.
func re2Template(s string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '$':
			b.WriteString("$$")
		case '\\':
			if i+1 >= len(s) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			switch n := s[i]; {
			case n == '\\':
				b.WriteByte('\\')
			case n >= '0' && n <= '9':
				if int(n-'0') > groups {
					return "", fmt.Errorf("group \\%c beyond the pattern's %d groups", n, groups)
				}
				fmt.Fprintf(&b, "${%c}", n)
			default:
				return "", fmt.Errorf("invalid escape \\%c", n)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// apply returns the rewritten :path of full and whether a rewrite applied,
// as Envoy: prefix_rewrite replaces the matched part (prefix, or the whole
// path for exact and regex matches) keeping the rest and the query;
// regex_rewrite substitutes every match in the path and keeps the query.
func (rw *rewrite) apply(full string) (string, bool) {
	switch {
	case rw.hasPrefix:
		n := matchedPathLen(rw.match, full)
		if n < 0 {
			return full, false
		}
		return rw.prefix + full[n:], true
	case rw.re != nil:
		path := stripQuery(full)
		return rw.re.ReplaceAllString(path, rw.template) + full[len(path):], true
	}
	return full, false
}

// PrepareRequest applies the route's request transformations to r before it
// is forwarded, in Envoy's order: request_headers_to_remove, then
// request_headers_to_add, then host_rewrite_literal and the path rewrite
// (prefix_rewrite or regex_rewrite). When a path rewrite applies, the
// client's :path is kept in x-envoy-original-path. r.URL (and r.RequestURI
// when set) carry the new path.
func (rt *Route) PrepareRequest(r *http.Request) {
	if rt == nil || r == nil || r.URL == nil {
		return
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	rt.reqHdrs.apply(r.Header)
	if rt.rewrite.host != "" {
		r.Host = rt.rewrite.host
	}
	orig := requestPath(r)
	if p, ok := rt.rewrite.apply(orig); ok {
		setRequestPath(r, p)
		r.Header.Set(OriginalPathHeader, orig)
	}
}

// PrepareResponse applies response_headers_to_remove then
// response_headers_to_add to h.
func (rt *Route) PrepareResponse(h http.Header) {
	if rt == nil || h == nil {
		return
	}
	rt.respHdrs.apply(h)
}

// setRequestPath stores :path p (escaped path and query) in r.
func setRequestPath(r *http.Request, p string) {
	path, query, hasQuery := strings.Cut(p, "?")
	r.URL.Opaque = ""
	if dec, err := url.PathUnescape(path); err == nil {
		r.URL.Path, r.URL.RawPath = dec, path
	} else {
		r.URL.Path, r.URL.RawPath = path, ""
	}
	r.URL.RawQuery, r.URL.ForceQuery = query, hasQuery && query == ""
	if r.RequestURI != "" {
		r.RequestURI = p
	}
}

// headerOps are a route's header removals and additions.
type headerOps struct {
	remove []string
	add    []headerOp
}

type headerOp struct {
	key    string // canonical
	value  string
	action corev3.HeaderValueOption_HeaderAppendAction
}

func compileHeaderOps(add []*corev3.HeaderValueOption, remove []string) (headerOps, error) {
	var ops headerOps
	for _, name := range remove {
		if err := modifiable(name); err != nil {
			return headerOps{}, fmt.Errorf("remove: %w", err)
		}
		ops.remove = append(ops.remove, http.CanonicalHeaderKey(name))
	}
	for i, o := range add {
		key, raw := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		if err := modifiable(key); err != nil {
			return headerOps{}, fmt.Errorf("add[%d]: %w", i, err)
		}
		value, err := literalValue(raw)
		if err != nil {
			return headerOps{}, fmt.Errorf("add[%d] %q: %w", i, key, err)
		}
		if _, known := corev3.HeaderValueOption_HeaderAppendAction_name[int32(o.GetAppendAction())]; !known {
			return headerOps{}, fmt.Errorf("add[%d]: unknown append_action %d", i, o.GetAppendAction())
		}
		ops.add = append(ops.add, headerOp{key: http.CanonicalHeaderKey(key), value: value, action: o.GetAppendAction()})
	}
	return ops, nil
}

// modifiable rejects invalid names, pseudo-headers and Host, which Envoy
// refuses to add or remove through header mutations.
func modifiable(name string) error {
	if name == "" || strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") || !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("header %q may not be modified", name)
	}
	return nil
}

// literalValue decodes an Envoy header value format: "%%" is a literal "%";
// command operators (%...%) are not implemented and are rejected.
func literalValue(v string) (string, error) {
	if !strings.Contains(v, "%") {
		if !httpguts.ValidHeaderFieldValue(v) {
			return "", fmt.Errorf("invalid header value")
		}
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("%w: command operator in header value", ErrUnsupported)
	}
	if !httpguts.ValidHeaderFieldValue(b.String()) {
		return "", fmt.Errorf("invalid header value")
	}
	return b.String(), nil
}

// apply removes, then adds, as Envoy's header parser; empty values are not
// added (keep_empty_value false).
func (o *headerOps) apply(h http.Header) {
	for _, k := range o.remove {
		h.Del(k)
	}
	for _, a := range o.add {
		if a.value == "" {
			continue
		}
		_, exists := h[a.key]
		switch a.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(a.key, a.value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h.Set(a.key, a.value)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(a.key, a.value)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h.Set(a.key, a.value)
			}
		}
	}
}
