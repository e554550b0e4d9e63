package route

import (
	"fmt"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultTimeout is Envoy's route timeout when RouteAction.timeout is unset.
const DefaultTimeout = 15 * time.Second

// Retry is a compiled retry_policy. NumRetries is the number of retries
// after the first attempt (Envoy's default 1 when unset); PerTryTimeout
// bounds each attempt (0: only the route timeout); StatusCodes are the
// retriable_status_codes used by the retriable-status-codes condition.
type Retry struct {
	NumRetries    uint32
	PerTryTimeout time.Duration
	StatusCodes   []uint32
	on            retryOn
}

type retryOn uint8

const (
	on5xx retryOn = 1 << iota
	onGatewayError
	onReset
	onConnectFailure
	onRetriable4xx
	onRefusedStream
	onStatusCodes
)

var retryConditions = map[string]retryOn{
	"5xx":                    on5xx,
	"gateway-error":          onGatewayError,
	"reset":                  onReset,
	"connect-failure":        onConnectFailure,
	"retriable-4xx":          onRetriable4xx,
	"refused-stream":         onRefusedStream,
	"retriable-status-codes": onStatusCodes,
}

// Retriable reports whether an attempt may be retried under Envoy's retry_on
// semantics: connectFailure is retried under 5xx, gateway-error, reset and
// connect-failure; another reset (upstream closed or reset the stream without
// a response) under 5xx, gateway-error and reset; a response status under 5xx
// (500-599), gateway-error (502, 503, 504), retriable-4xx (409) and
// retriable-status-codes (StatusCodes). A per-try timeout counts as a 504
// response, as in Envoy. refused-stream has no separate signal here (Go's
// HTTP/2 transport already retries REFUSED_STREAM). A nil Retry never retries.
func (r *Retry) Retriable(status int, connectFailure, reset bool) bool {
	if r == nil {
		return false
	}
	if connectFailure {
		return r.on&(on5xx|onGatewayError|onReset|onConnectFailure) != 0
	}
	if reset {
		return r.on&(on5xx|onGatewayError|onReset) != 0
	}
	switch {
	case r.on&on5xx != 0 && status >= 500 && status <= 599:
		return true
	case r.on&onGatewayError != 0 && (status == 502 || status == 503 || status == 504):
		return true
	case r.on&onRetriable4xx != 0 && status == 409:
		return true
	case r.on&onStatusCodes != 0 && status > 0 && slices.Contains(r.StatusCodes, uint32(status)):
		return true
	}
	return false
}

func (rt *Route) compileAction(a *routev3.RouteAction) error {
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if c.Cluster == "" {
			return fmt.Errorf("route.cluster is empty")
		}
		rt.Backends, rt.total = []Backend{{Cluster: c.Cluster, Weight: 1}}, 1
	case *routev3.RouteAction_WeightedClusters:
		for i, w := range c.WeightedClusters.GetClusters() {
			if w.GetName() == "" {
				return fmt.Errorf("route.weighted_clusters.clusters[%d]: name is required", i)
			}
			rt.Backends = append(rt.Backends, Backend{Cluster: w.GetName(), Weight: w.GetWeight().GetValue()})
			rt.total += uint64(w.GetWeight().GetValue())
		}
		if rt.total == 0 {
			return fmt.Errorf("route.weighted_clusters: total weight must be positive")
		}
	default:
		return fmt.Errorf("route: one of cluster, weighted_clusters is required")
	}
	var err error
	if rt.Timeout, err = duration(a.GetTimeout(), DefaultTimeout); err != nil {
		return fmt.Errorf("route.timeout: %w", err)
	}
	if rt.Retry, err = compileRetry(a.GetRetryPolicy()); err != nil {
		return fmt.Errorf("route.retry_policy: %w", err)
	}
	for i, mp := range a.GetRequestMirrorPolicies() {
		m, err := compileMirror(mp)
		if err != nil {
			return fmt.Errorf("route.request_mirror_policies[%d]: %w", i, err)
		}
		rt.Mirrors = append(rt.Mirrors, m)
	}
	if rt.rewrite, err = compileRewrite(a, &rt.match); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	return nil
}

func compileRetry(p *routev3.RetryPolicy) (*Retry, error) {
	if p == nil {
		return nil, nil
	}
	r := &Retry{NumRetries: 1, StatusCodes: slices.Clone(p.GetRetriableStatusCodes())}
	if p.GetNumRetries() != nil {
		r.NumRetries = p.GetNumRetries().GetValue()
	}
	for _, c := range strings.Split(p.GetRetryOn(), ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		bit, ok := retryConditions[c]
		if !ok {
			return nil, fmt.Errorf("%w retry_on value %q", ErrUnsupported, c)
		}
		r.on |= bit
	}
	for _, code := range r.StatusCodes {
		if code < 100 || code > 599 {
			return nil, fmt.Errorf("retriable_status_codes: %d is not an HTTP status", code)
		}
	}
	var err error
	if r.PerTryTimeout, err = duration(p.GetPerTryTimeout(), 0); err != nil {
		return nil, fmt.Errorf("per_try_timeout: %w", err)
	}
	if r.NumRetries == 0 || r.on == 0 {
		return nil, nil
	}
	return r, nil
}

func compileMirror(p *routev3.RouteAction_RequestMirrorPolicy) (Mirror, error) {
	if p.GetCluster() == "" {
		return Mirror{}, fmt.Errorf("cluster is required")
	}
	m := Mirror{Cluster: p.GetCluster(), Fraction: 1}
	if rf := p.GetRuntimeFraction(); rf != nil {
		dv := rf.GetDefaultValue()
		if dv == nil {
			return Mirror{}, fmt.Errorf("runtime_fraction.default_value is required")
		}
		var denom float64
		switch dv.GetDenominator() {
		case typev3.FractionalPercent_HUNDRED:
			denom = 100
		case typev3.FractionalPercent_TEN_THOUSAND:
			denom = 10_000
		case typev3.FractionalPercent_MILLION:
			denom = 1_000_000
		default:
			return Mirror{}, fmt.Errorf("runtime_fraction: unknown denominator %d", dv.GetDenominator())
		}
		m.Fraction = min(float64(dv.GetNumerator())/denom, 1)
	}
	return m, nil
}

// duration converts a proto duration, def when unset; negative is an error.
func duration(d *durationpb.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, fmt.Errorf("negative duration %s", v)
	}
	return v, nil
}
