package route

import (
	"fmt"
	"net/textproto"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// StringMatch is a compiled envoy.type.matcher.v3.StringMatcher: exact,
// prefix, suffix, contains (each optionally ASCII case-insensitive) or
// safe_regex (RE2 syntax, matching the whole input; ignore_case has no
// effect, as in Envoy). Immutable; safe for concurrent use.
type StringMatch struct {
	kind       stringKind
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

type stringKind int

const (
	strExact stringKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// CompileStringMatch validates sm and compiles it. Errors: a nil or empty
// matcher, an empty prefix/suffix/contains (invalid in Envoy), an invalid
// regex, or any unsupported field (wrapping ErrUnsupported).
func CompileStringMatch(sm *matcherv3.StringMatcher) (*StringMatch, error) {
	if sm == nil {
		return nil, fmt.Errorf("string matcher is required")
	}
	if err := allowed.Check(sm, ""); err != nil {
		return nil, err
	}
	m := &StringMatch{ignoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.kind, m.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		m.kind, m.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.kind, m.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.kind, m.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return nil, err
		}
		m.kind, m.re = strRegex, re
		return m, nil
	default:
		return nil, fmt.Errorf("string matcher: one of exact, prefix, suffix, contains, safe_regex is required")
	}
	if m.kind != strExact && m.value == "" {
		return nil, fmt.Errorf("string matcher: empty prefix, suffix or contains")
	}
	if m.ignoreCase {
		m.value = lowerASCII(m.value)
	}
	return m, nil
}

// Match reports whether s satisfies the matcher. A nil StringMatch matches
// nothing.
func (m *StringMatch) Match(s string) bool {
	if m == nil {
		return false
	}
	if m.kind == strRegex {
		return m.re.MatchString(s)
	}
	if m.ignoreCase {
		s = lowerASCII(s)
	}
	switch m.kind {
	case strExact:
		return s == m.value
	case strPrefix:
		return strings.HasPrefix(s, m.value)
	case strSuffix:
		return strings.HasSuffix(s, m.value)
	default:
		return strings.Contains(s, m.value)
	}
}

// compileRegex compiles an Envoy RegexMatcher (RE2) anchored at both ends,
// since Envoy's safe_regex must match the whole input.
func compileRegex(rm *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if rm == nil || rm.GetRegex() == "" {
		return nil, fmt.Errorf("safe_regex: regex is required")
	}
	re, err := regexp.Compile(`\A(?:` + rm.GetRegex() + `)\z`)
	if err != nil {
		return nil, fmt.Errorf("safe_regex %q: %w", rm.GetRegex(), err)
	}
	return re, nil
}

// HeaderMatch is a compiled envoy.config.route.v3.HeaderMatcher with
// string_match, present_match and invert_match (the RBAC filter uses the
// same message). Immutable; safe for concurrent use.
type HeaderMatch struct {
	// Name is the lower-case header name; pseudo-headers keep their colon.
	Name    string
	key     string // Name as an http.Header key (canonical), computed once
	str     *StringMatch
	present bool // present_match value; meaningful when str is nil
	invert  bool
}

// CompileHeaderMatch validates h and compiles it. Exactly one of
// string_match or present_match is required (a matcher with neither is a
// presence match, as Envoy's); other specifiers wrap ErrUnsupported.
func CompileHeaderMatch(h *routev3.HeaderMatcher) (*HeaderMatch, error) {
	if h == nil {
		return nil, fmt.Errorf("header matcher is required")
	}
	if err := allowed.Check(h, ""); err != nil {
		return nil, err
	}
	if h.GetName() == "" {
		return nil, fmt.Errorf("header matcher: name is required")
	}
	m := &HeaderMatch{Name: lowerASCII(h.GetName()), invert: h.GetInvertMatch(), present: true}
	m.key = textproto.CanonicalMIMEHeaderKey(m.Name)
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := CompileStringMatch(s.StringMatch)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		m.str = sm
	case *routev3.HeaderMatcher_PresentMatch:
		m.present = s.PresentMatch
	}
	return m, nil
}

// Key is Name as an http.Header key (its canonical form), so lookups need not
// canonicalize (and allocate) per request.
func (m *HeaderMatch) Key() string { return m.key }

// Match evaluates the matcher against a header's value (all values joined
// with ",", as Envoy) and whether the header is present. As Envoy (without
// treat_missing_header_as_empty): an absent header never satisfies a value
// match, inverted or not; present_match compares presence and invert_match
// negates it; for a present header invert_match negates the value match.
func (m *HeaderMatch) Match(value string, present bool) bool {
	if m == nil {
		return false
	}
	if m.str == nil {
		return (present == m.present) != m.invert
	}
	if !present {
		return false
	}
	return m.str.Match(value) != m.invert
}

// lowerASCII lower-cases ASCII letters only, as Envoy's case-insensitive
// matchers do.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
