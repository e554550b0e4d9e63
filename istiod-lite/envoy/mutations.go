package envoy

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// addHeaderMutations maps Set to OVERWRITE_IF_EXISTS_OR_ADD and Add to
// APPEND_IF_EXISTS_OR_ADD (request and response), and Remove to *_headers_to_remove.
// Envoy refuses to mutate pseudo-headers and Host; a request Set or Add of "host" on a
// forwarding route becomes host_rewrite_literal instead (unless the route already
// rewrites the host), anything else naming them is an error.
func addHeaderMutations(out *routev3.Route, r *l7.Route) error {
	req, host, err := headerOptions(r.RequestHeaders, true)
	if err != nil {
		return fmt.Errorf("request headers: %w", err)
	}
	if host != "" {
		a := out.GetRoute()
		if a == nil {
			return errorf("request headers: host set on a redirect")
		}
		if a.GetHostRewriteSpecifier() == nil {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: host}
		}
	}
	resp, _, err := headerOptions(r.ResponseHeaders, false)
	if err != nil {
		return fmt.Errorf("response headers: %w", err)
	}
	out.RequestHeadersToAdd, out.ResponseHeadersToAdd = req, resp
	if out.RequestHeadersToRemove, err = removals(r.RequestHeaders.Remove); err != nil {
		return fmt.Errorf("request headers: %w", err)
	}
	if out.ResponseHeadersToRemove, err = removals(r.ResponseHeaders.Remove); err != nil {
		return fmt.Errorf("response headers: %w", err)
	}
	return nil
}

func headerOptions(m l7.HeaderMutation, request bool) ([]*corev3.HeaderValueOption, string, error) {
	var out []*corev3.HeaderValueOption
	var host string
	add := func(hs []l7.Header, action corev3.HeaderValueOption_HeaderAppendAction) error {
		for _, h := range hs {
			name := strings.ToLower(h.Name)
			if request && name == "host" {
				if err := checkValue(h.Value); err != nil {
					return err
				}
				host = h.Value
				continue
			}
			if err := checkMutable(name); err != nil {
				return err
			}
			if err := checkValue(h.Value); err != nil {
				return err
			}
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: name, Value: h.Value},
				AppendAction: action,
			})
		}
		return nil
	}
	if err := add(m.Set, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD); err != nil {
		return nil, "", err
	}
	if err := add(m.Add, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD); err != nil {
		return nil, "", err
	}
	return out, host, nil
}

func removals(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		n = strings.ToLower(n)
		if err := checkMutable(n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func checkMutable(name string) error {
	switch {
	case name == "":
		return errorf("empty header name")
	case name == "host" || strings.HasPrefix(name, ":"):
		return errorf("header %q cannot be modified", name)
	case !validHeaderName(name):
		return errorf("invalid header name %q", name)
	}
	return nil
}

// checkValue rejects header values with NUL, CR or LF (Envoy's HTTP_HEADER_VALUE rule).
func checkValue(v string) error {
	if strings.ContainsAny(v, "\x00\r\n") {
		return errorf("invalid header value %q", v)
	}
	return nil
}

// addFault sets the route's typed_per_filter_config for the fault filter: a fixed delay
// and/or an HTTP abort, each with its percentage in millionths (issue5.md section 2).
// Zero percentages or a zero delay/status leave that part out; no part, no config.
func addFault(out *routev3.Route, f *l7.Fault) error {
	if f == nil {
		return nil
	}
	hf := &faultv3.HTTPFault{}
	if f.Delay != 0 && f.DelayPercent != 0 {
		if f.Delay < 0 || !validPercent(f.DelayPercent) {
			return errorf("fault delay %v at %v%%: want a positive delay at (0, 100]%%", f.Delay, f.DelayPercent)
		}
		hf.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: duration(f.Delay)},
			Percentage:         percentMillion(f.DelayPercent),
		}
	}
	if f.AbortStatus != 0 && f.AbortPercent != 0 {
		if f.AbortStatus < 200 || f.AbortStatus > 599 || !validPercent(f.AbortPercent) {
			return errorf("fault abort %d at %v%%: want a status in 200..599 at (0, 100]%%", f.AbortStatus, f.AbortPercent)
		}
		hf.Abort = &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortStatus},
			Percentage: percentMillion(f.AbortPercent),
		}
	}
	if hf.Delay == nil && hf.Abort == nil {
		return nil
	}
	out.TypedPerFilterConfig = map[string]*anypb.Any{waypointxds.FilterFault: waypointxds.MarshalAny(hf)}
	return nil
}
