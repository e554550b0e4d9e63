package l7

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// action translates an http route's actions (everything but its matches). An error
// means the route cannot be honoured: the caller makes it answer 500.
func (c *vsConverter) action(i int, h *networkingv1alpha3.HTTPRoute) (Route, uriRewrite, error) {
	var r Route
	var rw uriRewrite
	switch {
	case h.GetDelegate() != nil:
		return r, rw, errors.New("delegate is not supported")
	case h.GetDirectResponse() != nil:
		return r, rw, errors.New("directResponse is not supported")
	case h.GetCorsPolicy() != nil:
		return r, rw, errors.New("corsPolicy is not supported")
	case h.GetRedirect() != nil && len(h.GetRoute()) > 0:
		return r, rw, errors.New("redirect and route are exclusive")
	case h.GetRedirect() == nil && len(h.GetRoute()) == 0:
		return r, rw, errors.New("needs a route or a redirect")
	}
	var err error
	if r.RequestHeaders, r.ResponseHeaders, err = istioHeaders(h.GetHeaders()); err != nil {
		return r, rw, err
	}
	if r.Fault, err = vsFault(h.GetFault()); err != nil {
		return r, rw, err
	}
	if rd := h.GetRedirect(); rd != nil {
		if h.GetRewrite() != nil || h.GetMirror() != nil || len(h.GetMirrors()) > 0 {
			return r, rw, errors.New("a redirect with a rewrite or mirror is not supported")
		}
		r.Redirect, rw.redirectPrefix, err = vsRedirect(rd)
		return r, rw, err
	}
	if rw, r.Rewrite, err = vsRewrite(h.GetRewrite()); err != nil {
		return r, rw, err
	}
	if r.Timeout, err = optDuration(h.GetTimeout()); err != nil {
		return r, rw, fmt.Errorf("timeout: %w", err)
	}
	r.Retry = c.retry(i, h.GetRetries())
	r.Mirrors = c.mirrors(i, h)
	var w weighted
	for k, d := range h.GetRoute() {
		if d.GetHeaders() != nil {
			if len(h.GetRoute()) > 1 {
				return r, rw, errors.New("per-destination headers with several destinations are not supported")
			}
			req, resp, err := istioHeaders(d.GetHeaders())
			if err != nil {
				return r, rw, err
			}
			r.RequestHeaders = mergeMutation(r.RequestHeaders, req)
			r.ResponseHeaders = mergeMutation(r.ResponseHeaders, resp)
		}
		b, ok := c.destination(fmt.Sprintf("http[%d].route[%d]", i, k), d.GetDestination())
		weight := uint32(max(d.GetWeight(), 0))
		if len(h.GetRoute()) == 1 {
			weight = 1 // a single destination takes everything, whatever its weight
		}
		w.add(b, weight, ok)
	}
	if !w.apply(&r, c.fallback) {
		c.st.accepted.fail(ReasonUnsupportedValue, "http[%d]: the route aborts requests itself, so requests for its unresolved destinations go to the others", i)
	}
	if r.Rewrite == nil {
		rw = uriRewrite{} // the route answers 500: nothing to rewrite
	}
	return r, rw, nil
}

// destination resolves a destination: its host (relative to the VirtualService's
// namespace) must be a Service; its port is the given one, else the service's only
// port, else the port being routed; its subset must be defined by a DestinationRule.
func (c *vsConverter) destination(at string, d *networkingv1alpha3.Destination) (Backend, bool) {
	host, err := c.ix.resolveHost(d.GetHost(), c.vs.Namespace)
	if err != nil {
		c.st.accepted.fail(ReasonBackendNotFound, "%s: host %q: %v", at, d.GetHost(), err)
		return Backend{}, false
	}
	svc := c.ix.byHost[host]
	if svc == nil {
		c.st.accepted.fail(ReasonBackendNotFound, "%s: host %s is not a known Service", at, host)
		return Backend{}, false
	}
	port := d.GetPort().GetNumber()
	if port == 0 {
		if ports := servicePorts(svc); len(ports) == 1 {
			port = ports[0].Number
		} else {
			port = c.port
		}
	}
	if _, ok := servicePort(svc, port); !ok {
		c.st.accepted.fail(ReasonBackendNotFound, "%s: Service %s has no TCP port %d", at, host, port)
		return Backend{}, false
	}
	if s := d.GetSubset(); s != "" && c.ix.drs[host].subset(s) == nil {
		c.st.accepted.fail(ReasonBackendNotFound, "%s: subset %q of %s is not defined by a DestinationRule", at, s, host)
		return Backend{}, false
	}
	return Backend{Hostname: host, Port: port, Subset: d.GetSubset()}, true
}

// retry translates retries: attempts (0 or less: none), perTryTimeout, retryOn (the
// conditions the waypoint supports and status codes; unset: connect-failure,
// refused-stream and 503). Other fields and conditions are ignored and reported.
func (c *vsConverter) retry(i int, rr *networkingv1alpha3.HTTPRetry) *Retry {
	if rr.GetAttempts() <= 0 {
		return nil
	}
	if rr.GetRetryRemoteLocalities() != nil || rr.GetRetryIgnorePreviousHosts() != nil || rr.GetBackoff() != nil {
		c.st.accepted.note("http[%d].retries: retryRemoteLocalities, retryIgnorePreviousHosts and backoff are ignored", i)
	}
	r := &Retry{Attempts: uint32(min(rr.GetAttempts(), 1000))}
	var err error
	if r.PerTryTimeout, err = optDuration(rr.GetPerTryTimeout()); err != nil {
		c.st.accepted.fail(ReasonUnsupportedValue, "http[%d].retries.perTryTimeout: %v: ignored", i, err)
	}
	if strings.TrimSpace(rr.GetRetryOn()) == "" {
		r.On, r.StatusCodes = append([]string(nil), defaultRetryOn...), []uint32{503}
		return r
	}
	var unsupported []string
	for _, on := range strings.Split(rr.GetRetryOn(), ",") {
		on = strings.TrimSpace(on)
		code, cerr := strconv.ParseUint(on, 10, 32)
		switch {
		case on == "":
		case cerr == nil && code >= 100 && code <= 599:
			r.StatusCodes = append(r.StatusCodes, uint32(code))
		case retryOnAllowed[on]:
			if !slices.Contains(r.On, on) {
				r.On = append(r.On, on)
			}
		default:
			unsupported = append(unsupported, on)
		}
	}
	if len(unsupported) > 0 {
		c.st.accepted.fail(ReasonUnsupportedValue, "http[%d].retries.retryOn: %s not supported: ignored", i, strings.Join(unsupported, ", "))
	}
	if len(r.StatusCodes) > 0 && !slices.Contains(r.On, "retriable-status-codes") {
		r.On = append(r.On, "retriable-status-codes")
	}
	if len(r.On) == 0 {
		return nil
	}
	return r
}

// mirrors translates mirror (with mirrorPercentage, else mirrorPercent, else 100 %) and
// mirrors[] (percentage, else 100 %). Unresolved or invalid mirrors are dropped.
func (c *vsConverter) mirrors(i int, h *networkingv1alpha3.HTTPRoute) []Mirror {
	type mirror struct {
		at  string
		d   *networkingv1alpha3.Destination
		pct float64
	}
	var in []mirror
	if d := h.GetMirror(); d != nil {
		pct := 100.0
		if h.GetMirrorPercentage() != nil {
			pct = h.GetMirrorPercentage().GetValue()
		} else if h.GetMirrorPercent() != nil {
			pct = float64(h.GetMirrorPercent().GetValue())
		}
		in = append(in, mirror{fmt.Sprintf("http[%d].mirror", i), d, pct})
	}
	for k, m := range h.GetMirrors() {
		pct := 100.0
		if m.GetPercentage() != nil {
			pct = m.GetPercentage().GetValue()
		}
		in = append(in, mirror{fmt.Sprintf("http[%d].mirrors[%d]", i, k), m.GetDestination(), pct})
	}
	var out []Mirror
	for _, m := range in {
		if math.IsNaN(m.pct) || m.pct < 0 || m.pct > 100 {
			c.st.accepted.fail(ReasonUnsupportedValue, "%s: percentage %v is not within 0-100: no mirror", m.at, m.pct)
			continue
		}
		if b, ok := c.destination(m.at, m.d); ok && m.pct > 0 {
			out = append(out, Mirror{Backend: b, Percent: m.pct})
		}
	}
	return out
}

// vsFault translates fault injection: a fixed delay and an HTTP status abort, each with
// its percentage (unset: the deprecated integer percent for delays, 0 for aborts, as
// Istio). Exponential delays and gRPC or HTTP/2 aborts are not supported.
func vsFault(f *networkingv1alpha3.HTTPFaultInjection) (*Fault, error) {
	if f == nil {
		return nil, nil
	}
	out := &Fault{}
	if d := f.GetDelay(); d != nil {
		if d.GetFixedDelay() == nil {
			return nil, errors.New("only fixedDelay fault delays are supported")
		}
		v, err := protoDuration(d.GetFixedDelay())
		if err != nil {
			return nil, fmt.Errorf("fault.delay.fixedDelay: %w", err)
		}
		pct := float64(d.GetPercent())
		if d.GetPercentage() != nil {
			pct = d.GetPercentage().GetValue()
		}
		out.Delay, out.DelayPercent = v, pct
	}
	if a := f.GetAbort(); a != nil {
		hs, ok := a.GetErrorType().(*networkingv1alpha3.HTTPFaultInjection_Abort_HttpStatus)
		if !ok {
			return nil, errors.New("only httpStatus fault aborts are supported")
		}
		if hs.HttpStatus < 200 || hs.HttpStatus > 599 {
			return nil, fmt.Errorf("fault.abort.httpStatus %d is not within 200-599", hs.HttpStatus)
		}
		out.AbortStatus, out.AbortPercent = uint32(hs.HttpStatus), a.GetPercentage().GetValue()
	}
	for _, p := range []float64{out.DelayPercent, out.AbortPercent} {
		if math.IsNaN(p) || p < 0 || p > 100 {
			return nil, fmt.Errorf("fault percentage %v is not within 0-100", p)
		}
	}
	if out.DelayPercent == 0 && out.AbortPercent == 0 {
		return nil, nil
	}
	return out, nil
}

// vsRedirect translates a redirect (default code 301, as Istio); it returns the
// prefixRewrite separately, as its meaning depends on the match.
func vsRedirect(rd *networkingv1alpha3.HTTPRedirect) (*Redirect, string, error) {
	out := &Redirect{Scheme: strings.ToLower(rd.GetScheme()), Host: rd.GetAuthority(), Path: rd.GetUri(), StatusCode: 301}
	switch {
	case out.Scheme != "" && out.Scheme != "http" && out.Scheme != "https":
		return nil, "", fmt.Errorf("redirect scheme %q is not supported", rd.GetScheme())
	case checkHeaderValue(out.Host) != nil || strings.ContainsAny(out.Host, "/ "):
		return nil, "", fmt.Errorf("invalid redirect authority %q", out.Host)
	case out.Path != "" && checkPath(out.Path) != nil:
		return nil, "", checkPath(out.Path)
	case out.Path != "" && rd.GetPrefixRewrite() != "":
		return nil, "", errors.New("redirect uri and prefixRewrite are exclusive")
	case rd.GetPrefixRewrite() != "" && checkPath(rd.GetPrefixRewrite()) != nil:
		return nil, "", checkPath(rd.GetPrefixRewrite())
	}
	switch p := rd.GetRedirectPort().(type) {
	case nil:
	case *networkingv1alpha3.HTTPRedirect_Port:
		if p.Port < 1 || p.Port > 65535 {
			return nil, "", fmt.Errorf("invalid redirect port %d", p.Port)
		}
		out.Port = p.Port
	default:
		return nil, "", errors.New("redirect derivePort is not supported")
	}
	switch code := rd.GetRedirectCode(); code {
	case 0:
	case 301, 302, 303, 307, 308:
		out.StatusCode = int(code)
	default:
		return nil, "", fmt.Errorf("redirect code %d is not supported", code)
	}
	return out, rd.GetPrefixRewrite(), nil
}

// vsRewrite translates rewrite: authority -> Host; uri is returned as a uriRewrite, as
// its meaning depends on the match. uriRegexRewrite is not supported.
func vsRewrite(rw *networkingv1alpha3.HTTPRewrite) (uriRewrite, *Rewrite, error) {
	if rw == nil || (rw.GetUri() == "" && rw.GetAuthority() == "" && rw.GetUriRegexRewrite() == nil) {
		return uriRewrite{}, nil, nil
	}
	if rw.GetUriRegexRewrite() != nil {
		return uriRewrite{}, nil, errors.New("rewrite.uriRegexRewrite is not supported")
	}
	if a := rw.GetAuthority(); checkHeaderValue(a) != nil || strings.ContainsAny(a, "/ ") {
		return uriRewrite{}, nil, fmt.Errorf("invalid rewrite authority %q", a)
	}
	if u := rw.GetUri(); u != "" && checkPath(u) != nil {
		return uriRewrite{}, nil, checkPath(u)
	}
	return uriRewrite{rewrite: rw.GetUri(), hasRewrite: rw.GetUri() != ""}, &Rewrite{Host: rw.GetAuthority()}, nil
}

// istioHeaders translates request and response header operations (maps sorted by name).
func istioHeaders(h *networkingv1alpha3.Headers) (req, resp HeaderMutation, err error) {
	if h == nil {
		return req, resp, nil
	}
	conv := func(ops *networkingv1alpha3.Headers_HeaderOperations) (HeaderMutation, error) {
		pairs := func(m map[string]string) []Header {
			var out []Header
			for _, k := range slices.Sorted(maps.Keys(m)) {
				out = append(out, Header{Name: k, Value: m[k]})
			}
			return out
		}
		return mutation(pairs(ops.GetSet()), pairs(ops.GetAdd()), ops.GetRemove())
	}
	if req, err = conv(h.GetRequest()); err != nil {
		return req, resp, fmt.Errorf("headers.request: %w", err)
	}
	if resp, err = conv(h.GetResponse()); err != nil {
		return req, resp, fmt.Errorf("headers.response: %w", err)
	}
	return req, resp, nil
}

func mergeMutation(a, b HeaderMutation) HeaderMutation {
	return HeaderMutation{Set: append(a.Set, b.Set...), Add: append(a.Add, b.Add...), Remove: append(a.Remove, b.Remove...)}
}

// optDuration converts an optional protobuf duration (nil: 0).
func optDuration(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	return protoDuration(d)
}
