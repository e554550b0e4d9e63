package l7

import (
	"fmt"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// precedence is what orders HTTPRoute matches attached to one service port.
type precedence struct {
	rank, pathLen   int // path: 3 exact, 2 prefix, 1 regex; and the value's length
	method          bool
	headers, query  int
	created         time.Time
	namespace, name string
	rule, match     int
}

// gatewayMatch converts an HTTPRouteMatch: path Exact, PathPrefix (a trailing '/'
// ignored) or RegularExpression, default PathPrefix "/"; header matches (names
// lowercased, the first of equal names kept) and query matches Exact or
// RegularExpression; the method. It fails on values the waypoint cannot represent.
func gatewayMatch(m *gatewayv1.HTTPRouteMatch) (Match, precedence, error) {
	var out Match
	prec := precedence{rank: 2, pathLen: 1}
	if m.Path != nil {
		typ, val := gatewayv1.PathMatchPathPrefix, "/"
		if m.Path.Type != nil {
			typ = *m.Path.Type
		}
		if m.Path.Value != nil {
			val = *m.Path.Value
		}
		var err error
		switch typ {
		case gatewayv1.PathMatchExact:
			err = checkPath(val)
			out.Path, prec.rank = PathMatch{Kind: PathExact, Value: val}, 3
		case gatewayv1.PathMatchPathPrefix:
			if val != "/" {
				val = strings.TrimSuffix(val, "/")
			}
			err = checkPath(val)
			out.Path, prec.rank = PathMatch{Kind: PathPrefix, Value: val}, 2
		case gatewayv1.PathMatchRegularExpression:
			err = checkRegex(val)
			out.Path, prec.rank = PathMatch{Kind: PathRegex, Value: val}, 1
		default:
			err = fmt.Errorf("path match type %q is not supported", typ)
		}
		if err != nil {
			return Match{}, prec, err
		}
		prec.pathLen = len(val)
	}
	var err error
	if out.Headers, err = gatewayStringMatches(m.Headers, true); err != nil {
		return Match{}, prec, err
	}
	if out.Query, err = gatewayQueryMatches(m.QueryParams); err != nil {
		return Match{}, prec, err
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
		if err := checkHeaderName(out.Method, false); err != nil {
			return Match{}, prec, fmt.Errorf("invalid method %q", out.Method)
		}
		prec.method = true
	}
	prec.headers, prec.query = len(out.Headers), len(out.Query)
	return out, prec, nil
}

func gatewayStringMatches(hs []gatewayv1.HTTPHeaderMatch, header bool) ([]StringMatch, error) {
	var out []StringMatch
	seen := map[string]bool{}
	for _, h := range hs {
		regex, err := gatewayMatchType((*string)(h.Type))
		if err != nil {
			return nil, err
		}
		sm, err := stringMatch(string(h.Name), h.Value, regex, header)
		if err != nil {
			return nil, err
		}
		if seen[sm.Name] {
			continue // Gateway API: only the first of equivalent names counts
		}
		seen[sm.Name] = true
		out = append(out, sm)
	}
	return out, nil
}

func gatewayQueryMatches(qs []gatewayv1.HTTPQueryParamMatch) ([]StringMatch, error) {
	hs := make([]gatewayv1.HTTPHeaderMatch, 0, len(qs))
	for _, q := range qs {
		hs = append(hs, gatewayv1.HTTPHeaderMatch{Type: (*gatewayv1.HeaderMatchType)(q.Type), Name: q.Name, Value: q.Value})
	}
	return gatewayStringMatches(hs, false)
}

// gatewayMatchType tells whether a Gateway API match type is RegularExpression (nil and
// "Exact" are exact).
func gatewayMatchType(t *string) (bool, error) {
	switch {
	case t == nil || *t == string(gatewayv1.HeaderMatchExact):
		return false, nil
	case *t == string(gatewayv1.HeaderMatchRegularExpression):
		return true, nil
	}
	return false, fmt.Errorf("match type %q is not supported", *t)
}

// stringMatch builds a header (name lowercased) or query (name as is) condition.
func stringMatch(name, value string, regex, header bool) (StringMatch, error) {
	if header {
		name = strings.ToLower(name)
		if err := checkHeaderName(name, true); err != nil {
			return StringMatch{}, err
		}
	} else if name == "" || strings.ContainsAny(name, "&=#\x00\r\n") {
		return StringMatch{}, fmt.Errorf("invalid query parameter name %q", name)
	}
	if regex {
		if err := checkRegex(value); err != nil {
			return StringMatch{}, err
		}
	} else if err := checkHeaderValue(value); err != nil {
		return StringMatch{}, err
	}
	return StringMatch{Name: name, Regex: regex, Value: value}, nil
}
