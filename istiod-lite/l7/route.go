package l7

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var errNegativeDuration = errors.New("negative duration")

// abortStatus is what a route that cannot be honoured answers (Gateway API: 500 for a
// rule without valid backends).
const abortStatus = 500

// failRoute turns r into a route that answers 500 to everything it matches: a fault
// abort of 100 % in front of fallback (the parent service's own cluster, which always
// exists and is never reached).
func failRoute(r *Route, fallback Backend) {
	*r = Route{
		Name:     r.Name,
		Match:    r.Match,
		Backends: []WeightedBackend{{Backend: fallback, Weight: 1}},
		Fault:    &Fault{AbortPercent: 100, AbortStatus: abortStatus},
	}
}

// weighted is a route's backends as resolved: the valid ones, and the total weight of
// those that did not resolve.
type weighted struct {
	valid   []WeightedBackend
	invalid uint64
}

func (w *weighted) add(b Backend, weight uint32, ok bool) {
	if !ok {
		w.invalid += uint64(weight)
		return
	}
	if weight > 0 {
		w.valid = append(w.valid, WeightedBackend{Backend: b, Weight: weight})
	}
}

// apply sets r's backends. The share of the weight that went to invalid backends is
// answered with 500 by a fault abort of that percentage, which leaves the valid
// backends their relative weights (as Gateway API requires). No valid weight: the
// route answers 500. It reports false when r already aborts a share of its requests
// (its own fault), in which case invalid backends' share goes to the valid ones.
func (w *weighted) apply(r *Route, fallback Backend) bool {
	var total uint64
	for _, b := range w.valid {
		total += uint64(b.Weight)
	}
	if total == 0 {
		failRoute(r, fallback)
		return true
	}
	r.Backends = w.valid
	if w.invalid == 0 {
		return true
	}
	share := float64(w.invalid) / float64(w.invalid+total) * 100
	switch {
	case r.Fault == nil:
		r.Fault = &Fault{AbortPercent: share, AbortStatus: abortStatus}
	case r.Fault.AbortPercent == 0:
		r.Fault.AbortPercent, r.Fault.AbortStatus = share, abortStatus
	default:
		return false
	}
	return true
}

// headerNameRE is Envoy's HTTP_HEADER_NAME rule (without pseudo-headers, which routes
// must not mutate).
var headerNameRE = regexp.MustCompile("^[0-9a-zA-Z!#$%&'*+\\-.^_|~`]+$")

// checkHeaderName validates a header name for matching or mutation; pseudo allows a
// leading ':' (matches only).
func checkHeaderName(name string, pseudo bool) error {
	n := name
	if pseudo {
		n = strings.TrimPrefix(n, ":")
	}
	if !headerNameRE.MatchString(n) {
		return fmt.Errorf("invalid header name %q", name)
	}
	return nil
}

// checkHeaderValue rejects values Envoy refuses (NUL, CR, LF).
func checkHeaderValue(v string) error {
	if strings.ContainsAny(v, "\x00\r\n") {
		return fmt.Errorf("invalid header value %q", v)
	}
	return nil
}

// checkRegex validates an RE2 pattern (Go's regexp is the engine's).
func checkRegex(re string) error {
	if re == "" {
		return errors.New("empty regular expression")
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("regular expression %q: %w", re, err)
	}
	return nil
}

// checkPath validates a literal path for an exact or prefix match or a rewrite.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\x00\r\n") {
		return fmt.Errorf("path %q must start with '/' and hold no '?' or '#'", p)
	}
	return nil
}

// mutation builds a HeaderMutation from set/add pairs (each sorted by the caller's
// order) and removals: names lowercased and validated; mutating pseudo-headers or Host
// is not supported.
func mutation(set, add []Header, remove []string) (HeaderMutation, error) {
	var m HeaderMutation
	for _, list := range []struct {
		in  []Header
		out *[]Header
	}{{set, &m.Set}, {add, &m.Add}} {
		for _, h := range list.in {
			name := strings.ToLower(h.Name)
			if err := checkMutable(name); err != nil {
				return HeaderMutation{}, err
			}
			if err := checkHeaderValue(h.Value); err != nil {
				return HeaderMutation{}, err
			}
			*list.out = append(*list.out, Header{Name: name, Value: h.Value})
		}
	}
	for _, r := range remove {
		name := strings.ToLower(r)
		if err := checkMutable(name); err != nil {
			return HeaderMutation{}, err
		}
		if !slices.Contains(m.Remove, name) {
			m.Remove = append(m.Remove, name)
		}
	}
	return m, nil
}

func checkMutable(name string) error {
	if name == "host" || strings.HasPrefix(name, ":") {
		return fmt.Errorf("header %q cannot be modified", name)
	}
	return checkHeaderName(name, false)
}

// cloneRoute copies r's slices so routes built from one rule share nothing.
func cloneRoute(r Route) Route {
	r.Backends = slices.Clone(r.Backends)
	r.Mirrors = slices.Clone(r.Mirrors)
	r.RequestHeaders = cloneMutation(r.RequestHeaders)
	r.ResponseHeaders = cloneMutation(r.ResponseHeaders)
	if r.Redirect != nil {
		rd := *r.Redirect
		r.Redirect = &rd
	}
	if r.Rewrite != nil {
		rw := *r.Rewrite
		r.Rewrite = &rw
	}
	if r.Retry != nil {
		rt := *r.Retry
		rt.On, rt.StatusCodes = slices.Clone(rt.On), slices.Clone(rt.StatusCodes)
		r.Retry = &rt
	}
	if r.Fault != nil {
		f := *r.Fault
		r.Fault = &f
	}
	return r
}

func cloneMutation(m HeaderMutation) HeaderMutation {
	return HeaderMutation{Set: slices.Clone(m.Set), Add: slices.Clone(m.Add), Remove: slices.Clone(m.Remove)}
}

// routeName is "<kind>/<namespace>/<name>/<rule index>/<match index>".
func routeName(kind, namespace, name string, rule, match int) string {
	return kind + "/" + namespace + "/" + name + "/" + itoa(rule) + "/" + itoa(match)
}

// retryOnAllowed are the retry_on conditions the waypoint supports (issue 5 §2).
var retryOnAllowed = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "connect-failure": true,
	"retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true,
}

// Default retry conditions when a retry policy names none (Istio's, minus the gRPC ones).
var defaultRetryOn = []string{"connect-failure", "refused-stream", "retriable-status-codes"}
