package envoy

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// RetryOn is the set of Envoy retry_on conditions the generator emits and the engine
// implements (issue5.md section 2).
var RetryOn = []string{"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx",
	"refused-stream", "retriable-status-codes"}

// defaultRetryOn is used for an l7.Retry without conditions, like Istio's default
// (connect-failure, refused-stream, retriable-status-codes with 503) minus its
// gRPC-only conditions.
const defaultRetryOn = "connect-failure,refused-stream,retriable-status-codes"

// buildAction is the RouteAction of a forwarding route: one cluster, or weighted
// clusters (zero weights dropped; all zero: the first backend, like a single one), the
// timeout (always set: 0s means none), retries, mirrors and rewrites.
func buildAction(r *l7.Route) (*routev3.RouteAction, []l7.Backend, error) {
	if err := checkTimeout("timeout", r.Timeout); err != nil {
		return nil, nil, err
	}
	a := &routev3.RouteAction{Timeout: duration(r.Timeout)}
	var reached []l7.Backend
	var weighted []*routev3.WeightedCluster_ClusterWeight
	var total uint64
	for _, b := range r.Backends {
		reached = append(reached, b.Backend)
		if b.Weight == 0 {
			continue
		}
		total += uint64(b.Weight)
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{Name: b.Name(), Weight: u32(b.Weight)})
	}
	switch {
	case total > math.MaxUint32:
		return nil, nil, errorf("backend weights sum to %d, over 2^32-1", total)
	case len(weighted) > 1:
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	case len(weighted) == 1:
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].GetName()}
	default:
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Backends[0].Name()}
	}
	if err := addRetry(a, r.Retry); err != nil {
		return nil, nil, err
	}
	for _, m := range r.Mirrors {
		if m.Percent == 0 {
			continue
		}
		if !validPercent(m.Percent) {
			return nil, nil, errorf("mirror percent %v outside (0, 100]", m.Percent)
		}
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         m.Backend.Name(),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: percentFraction(m.Percent)},
		})
		reached = append(reached, m.Backend)
	}
	if err := addRewrite(a, r.Rewrite, r.Match.Path); err != nil {
		return nil, nil, err
	}
	return a, reached, nil
}

func addRetry(a *routev3.RouteAction, r *l7.Retry) error {
	if r == nil || r.Attempts == 0 {
		return nil
	}
	if err := checkTimeout("per-try timeout", r.PerTryTimeout); err != nil {
		return err
	}
	on := slices.Clone(r.On)
	for _, c := range on {
		if !slices.Contains(RetryOn, c) {
			return errorf("unsupported retry condition %q", c)
		}
	}
	codes := slices.Clone(r.StatusCodes)
	for _, c := range codes {
		if c < 100 || c > 599 {
			return errorf("retriable status code %d outside 100..599", c)
		}
	}
	if len(on) == 0 && len(codes) == 0 {
		on, codes = strings.Split(defaultRetryOn, ","), []uint32{503}
	}
	if len(codes) > 0 && !slices.Contains(on, "retriable-status-codes") {
		on = append(on, "retriable-status-codes")
	}
	p := &routev3.RetryPolicy{
		RetryOn:              strings.Join(on, ","),
		NumRetries:           u32(r.Attempts),
		RetriableStatusCodes: codes,
	}
	if r.PerTryTimeout > 0 {
		p.PerTryTimeout = duration(r.PerTryTimeout)
	}
	a.RetryPolicy = p
	return nil
}

// addRewrite maps host and path rewrites. A full path replacement is a regex_rewrite of
// the whole path; a prefix replacement is prefix_rewrite, except that replacing a
// path-separated prefix with "/" is a regex_rewrite that also eats the separator (so
// "/foo/bar" becomes "/bar", not "//bar", as Gateway API's ReplacePrefixMatch requires).
func addRewrite(a *routev3.RouteAction, rw *l7.Rewrite, m l7.PathMatch) error {
	if rw == nil {
		return nil
	}
	for _, f := range []string{rw.Host, rw.Path, rw.PrefixRewrite} {
		if err := checkValue(f); err != nil {
			return fmt.Errorf("rewrite: %w", err)
		}
	}
	if rw.Host != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Host}
	}
	switch {
	case rw.Path != "":
		a.RegexRewrite = wholePath(rw.Path)
	case rw.PrefixSet || rw.PrefixRewrite != "":
		return addPrefixRewrite(a, rw.PrefixRewrite, m)
	}
	return nil
}

func addPrefixRewrite(a *routev3.RouteAction, repl string, m l7.PathMatch) error {
	if repl == "" {
		repl = "/"
	}
	switch m.Kind {
	case l7.PathPrefix:
		p := strings.TrimRight(m.Value, "/")
		switch {
		case p == "":
			a.PrefixRewrite = strings.TrimRight(repl, "/") + "/"
		case repl == "/":
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(p) + "/*"},
				Substitution: "/",
			}
		default:
			a.PrefixRewrite = strings.TrimRight(repl, "/")
		}
	case l7.PathRaw, l7.PathAny:
		a.PrefixRewrite = repl
	case l7.PathExact:
		a.RegexRewrite = wholePath(repl)
	default:
		return errorf("prefix rewrite with a %q path match", m.Kind)
	}
	return nil
}

func wholePath(p string) *matcherv3.RegexMatchAndSubstitute {
	return &matcherv3.RegexMatchAndSubstitute{
		Pattern:      &matcherv3.RegexMatcher{Regex: "^/.*$"},
		Substitution: strings.ReplaceAll(p, `\`, `\\`),
	}
}

// redirectCodes maps HTTP status codes to RedirectAction response codes; 0 is 302.
var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	0:   routev3.RedirectAction_FOUND,
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

func buildRedirect(rd *l7.Redirect, m l7.PathMatch) (*routev3.RedirectAction, error) {
	for _, f := range []string{rd.Scheme, rd.Host, rd.Path, rd.PrefixRewrite} {
		if err := checkValue(f); err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
	}
	code, ok := redirectCodes[rd.StatusCode]
	if !ok {
		return nil, errorf("redirect status code %d not one of 301, 302, 303, 307, 308", rd.StatusCode)
	}
	if rd.Port > 65535 {
		return nil, errorf("redirect port %d over 65535", rd.Port)
	}
	out := &routev3.RedirectAction{HostRedirect: rd.Host, PortRedirect: rd.Port, ResponseCode: code}
	if rd.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	switch {
	case rd.Path != "" && rd.PrefixRewrite != "":
		return nil, errorf("redirect with both a path and a prefix rewrite")
	case rd.Path != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: rd.Path}
	case rd.PrefixRewrite != "":
		if m.Kind != l7.PathPrefix && m.Kind != l7.PathRaw && m.Kind != l7.PathAny {
			return nil, errorf("redirect prefix rewrite with a %q path match", m.Kind)
		}
		repl := rd.PrefixRewrite
		if m.Kind == l7.PathPrefix && repl != "/" && strings.TrimRight(m.Value, "/") != "" {
			repl = strings.TrimRight(repl, "/")
		}
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: repl}
	}
	return out, nil
}
