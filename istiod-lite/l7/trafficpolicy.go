package l7

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// convertTrafficPolicy maps a DestinationRule traffic policy (F-WP-5): loadBalancer.simple
// -> LBPolicy; connectionPool tcp.maxConnections, http.http1MaxPendingRequests,
// http.http2MaxRequests, http.maxRetries -> Limits; outlierDetection consecutive5xxErrors
// (else consecutiveErrors), interval, baseEjectionTime, maxEjectionPercent -> Outlier.
// Everything else is ignored and reported on c (nil: not reported) under the path at.
// None of the ignored settings grants access.
func convertTrafficPolicy(tp *networkingv1alpha3.TrafficPolicy, at string, c *cond) (LBPolicy, *Limits, *Outlier) {
	if tp == nil {
		return "", nil, nil
	}
	ignored := func(set bool, field string) {
		if set {
			c.fail(ReasonUnsupportedValue, "%s.%s is not supported: ignored", at, field)
		}
	}
	ignored(tp.GetTls() != nil, "tls (endpoints are always reached over HBONE mTLS)")
	ignored(len(tp.GetPortLevelSettings()) > 0, "portLevelSettings")
	ignored(tp.GetTunnel() != nil, "tunnel")
	ignored(tp.GetProxyProtocol() != nil, "proxyProtocol")
	ignored(tp.GetRetryBudget() != nil, "retryBudget")
	return loadBalancer(tp.GetLoadBalancer(), at+".loadBalancer", c),
		limits(tp.GetConnectionPool(), at+".connectionPool", c),
		outlier(tp.GetOutlierDetection(), at+".outlierDetection", c)
}

func loadBalancer(lb *networkingv1alpha3.LoadBalancerSettings, at string, c *cond) LBPolicy {
	if lb == nil {
		return ""
	}
	if lb.GetLocalityLbSetting() != nil || lb.GetZoneAwareLbSetting() != nil || lb.GetWarmupDurationSecs() != nil || lb.GetWarmup() != nil {
		c.fail(ReasonUnsupportedValue, "%s: locality, zone-aware and warmup settings are not supported: ignored", at)
	}
	if lb.GetConsistentHash() != nil {
		c.fail(ReasonUnsupportedValue, "%s.consistentHash is not supported: round robin is used", at)
		return ""
	}
	switch lb.GetSimple() {
	case networkingv1alpha3.LoadBalancerSettings_ROUND_ROBIN:
		return LBRoundRobin
	case networkingv1alpha3.LoadBalancerSettings_LEAST_REQUEST, networkingv1alpha3.LoadBalancerSettings_LEAST_CONN:
		return LBLeastRequest
	case networkingv1alpha3.LoadBalancerSettings_RANDOM:
		return LBRandom
	case networkingv1alpha3.LoadBalancerSettings_UNSPECIFIED:
		return ""
	}
	c.fail(ReasonUnsupportedValue, "%s.simple %s is not supported: round robin is used", at, lb.GetSimple())
	return ""
}

func limits(cp *networkingv1alpha3.ConnectionPoolSettings, at string, c *cond) *Limits {
	if cp == nil {
		return nil
	}
	l := &Limits{}
	count := func(v int32, field string) uint32 {
		if v < 0 {
			c.fail(ReasonUnsupportedValue, "%s.%s: negative value %d: ignored", at, field, v)
			return 0
		}
		return uint32(v)
	}
	if t := cp.GetTcp(); t != nil {
		l.MaxConnections = count(t.GetMaxConnections(), "tcp.maxConnections")
		if t.GetConnectTimeout() != nil || t.GetTcpKeepalive() != nil || t.GetMaxConnectionDuration() != nil || t.GetIdleTimeout() != nil {
			c.fail(ReasonUnsupportedValue, "%s.tcp: only maxConnections is supported: the other settings are ignored", at)
		}
	}
	if h := cp.GetHttp(); h != nil {
		l.MaxPendingRequests = count(h.GetHttp1MaxPendingRequests(), "http.http1MaxPendingRequests")
		l.MaxRequests = count(h.GetHttp2MaxRequests(), "http.http2MaxRequests")
		l.MaxRetries = count(h.GetMaxRetries(), "http.maxRetries")
		if h.GetMaxRequestsPerConnection() != 0 || h.GetIdleTimeout() != nil || h.GetH2UpgradePolicy() != 0 ||
			h.GetUseClientProtocol() || h.GetMaxConcurrentStreams() != 0 || h.GetHttp2KeepAlive() != nil {
			c.fail(ReasonUnsupportedValue, "%s.http: only http1MaxPendingRequests, http2MaxRequests and maxRetries are supported: the other settings are ignored", at)
		}
	}
	if *l == (Limits{}) {
		return nil
	}
	return l
}

func outlier(od *networkingv1alpha3.OutlierDetection, at string, c *cond) *Outlier {
	if od == nil {
		return nil
	}
	o := &Outlier{}
	switch v := od.GetConsecutive_5XxErrors(); {
	case v != nil && v.GetValue() == 0:
		c.fail(ReasonUnsupportedValue, "%s.consecutive5xxErrors 0 (no 5xx ejection) is not supported: the default (5) is used", at)
	case v != nil:
		o.Consecutive5xx = v.GetValue()
	case od.GetConsecutiveErrors() > 0:
		o.Consecutive5xx = uint32(od.GetConsecutiveErrors())
	}
	o.Interval = positiveDuration(od.GetInterval(), at+".interval", c)
	o.BaseEjectionTime = positiveDuration(od.GetBaseEjectionTime(), at+".baseEjectionTime", c)
	switch p := od.GetMaxEjectionPercent(); {
	case p < 0 || p > 100:
		c.fail(ReasonUnsupportedValue, "%s.maxEjectionPercent %d is not within 0-100: the default is used", at, p)
	default:
		o.MaxEjectionPercent = uint32(p)
	}
	if od.GetSplitExternalLocalOriginErrors() || od.GetConsecutiveLocalOriginFailures() != nil ||
		od.GetConsecutiveGatewayErrors() != nil || od.GetMinHealthPercent() != 0 || len(od.GetOutlierDetectionHttpErrorCodes()) > 0 {
		c.fail(ReasonUnsupportedValue, "%s: only consecutive5xxErrors, interval, baseEjectionTime and maxEjectionPercent are supported: the other settings are ignored", at)
	}
	return o
}

// positiveDuration converts a duration that must be positive; 0 (the default) when
// unset, invalid or not positive (reported).
func positiveDuration(d *durationpb.Duration, at string, c *cond) time.Duration {
	if d == nil {
		return 0
	}
	v, err := protoDuration(d)
	if err != nil || v <= 0 {
		c.fail(ReasonUnsupportedValue, "%s: not a positive duration: the default is used", at)
		return 0
	}
	return v
}

// protoDuration converts a valid, non-negative protobuf duration.
func protoDuration(d *durationpb.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, errNegativeDuration
	}
	return v, nil
}
