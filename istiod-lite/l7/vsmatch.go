package l7

import (
	"errors"
	"maps"
	"regexp"
	"slices"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// vsMatch converts a VirtualService match (nil: every request). uri exact -> PathExact,
// prefix -> PathRaw, regex -> PathRegex (ignoreUriCase: a case-insensitive regex);
// method exact -> Method, else a ":method" header regex; authority -> a ":authority"
// header; headers, withoutHeaders (inverted) and queryParams -> exact or regex
// conditions (a prefix becomes a regex, an empty match means "present"). A match on
// the source (sourceLabels, sourceNamespace, gateways other than mesh) or the scheme
// cannot be evaluated by the waypoint: it is an error and the caller drops the match.
func vsMatch(m *networkingv1alpha3.HTTPMatchRequest) (Match, uriPrefix, error) {
	var out Match
	if m == nil {
		return out, notPrefix, nil
	}
	switch {
	case m.GetScheme() != nil:
		return out, notPrefix, errors.New("scheme matches are not supported")
	case len(m.GetSourceLabels()) > 0:
		return out, notPrefix, errors.New("sourceLabels matches are not supported")
	case m.GetSourceNamespace() != "":
		return out, notPrefix, errors.New("sourceNamespace matches are not supported")
	case len(m.GetGateways()) > 0 && !slices.Contains(m.GetGateways(), "mesh"):
		return out, notPrefix, errors.New("matches on gateways other than mesh never apply to a waypoint")
	}
	prefix, err := vsURI(m, &out)
	if err != nil {
		return Match{}, notPrefix, err
	}
	if err := vsMethod(m.GetMethod(), &out); err != nil {
		return Match{}, notPrefix, err
	}
	if a := m.GetAuthority(); a != nil {
		sm, err := istioStringMatch(":authority", a, true, false)
		if err != nil {
			return Match{}, notPrefix, err
		}
		out.Headers = append(out.Headers, sm)
	}
	for _, set := range []struct {
		ms             map[string]*networkingv1alpha3.StringMatch
		header, invert bool
		into           *[]StringMatch
	}{
		{m.GetHeaders(), true, false, &out.Headers},
		{m.GetWithoutHeaders(), true, true, &out.Headers},
		{m.GetQueryParams(), false, false, &out.Query},
	} {
		for _, name := range slices.Sorted(maps.Keys(set.ms)) {
			sm, err := istioStringMatch(name, set.ms[name], set.header, set.invert)
			if err != nil {
				return Match{}, notPrefix, err
			}
			*set.into = append(*set.into, sm)
		}
	}
	return out, prefix, nil
}

func vsURI(m *networkingv1alpha3.HTTPMatchRequest, out *Match) (uriPrefix, error) {
	fold := m.GetIgnoreUriCase()
	switch x := m.GetUri().GetMatchType().(type) {
	case nil:
		return notPrefix, nil
	case *networkingv1alpha3.StringMatch_Exact:
		if err := checkPath(x.Exact); err != nil {
			return notPrefix, err
		}
		out.Path = PathMatch{Kind: PathExact, Value: x.Exact}
		if fold {
			out.Path = PathMatch{Kind: PathRegex, Value: "(?i)" + regexp.QuoteMeta(x.Exact)}
		}
		return notPrefix, nil
	case *networkingv1alpha3.StringMatch_Prefix:
		if err := checkPath(x.Prefix); err != nil {
			return notPrefix, err
		}
		if fold {
			out.Path = PathMatch{Kind: PathRegex, Value: "(?i)" + regexp.QuoteMeta(x.Prefix) + ".*"}
			return foldedPrefix, nil
		}
		out.Path = PathMatch{Kind: PathRaw, Value: x.Prefix}
		return plainPrefix, nil
	case *networkingv1alpha3.StringMatch_Regex:
		if err := checkRegex(x.Regex); err != nil {
			return notPrefix, err
		}
		out.Path = PathMatch{Kind: PathRegex, Value: x.Regex}
		if fold {
			out.Path.Value = "(?i)(?:" + x.Regex + ")"
		}
		return notPrefix, nil
	}
	return notPrefix, errors.New("unknown uri match")
}

func vsMethod(sm *networkingv1alpha3.StringMatch, out *Match) error {
	if sm == nil || sm.GetMatchType() == nil {
		return nil
	}
	if ex, ok := sm.GetMatchType().(*networkingv1alpha3.StringMatch_Exact); ok {
		if checkHeaderName(ex.Exact, false) != nil {
			return errors.New("invalid method " + ex.Exact)
		}
		out.Method = ex.Exact
		return nil
	}
	h, err := istioStringMatch(":method", sm, true, false)
	if err != nil {
		return err
	}
	out.Headers = append(out.Headers, h)
	return nil
}

// istioStringMatch converts an Istio StringMatch on a header or query parameter.
func istioStringMatch(name string, sm *networkingv1alpha3.StringMatch, header, invert bool) (StringMatch, error) {
	value, regex := ".*", true // no match type: the header or parameter is present
	switch x := sm.GetMatchType().(type) {
	case *networkingv1alpha3.StringMatch_Exact:
		value, regex = x.Exact, false
	case *networkingv1alpha3.StringMatch_Prefix:
		value = regexp.QuoteMeta(x.Prefix) + ".*"
	case *networkingv1alpha3.StringMatch_Regex:
		value = x.Regex
	}
	out, err := stringMatch(name, value, regex, header)
	out.Invert = invert
	return out, err
}
