package envoy

import (
	"net/netip"
	"time"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// Test fixtures: the waypoint "waypoint" in namespace "bookinfo" serving the service
// "reviews" (VIP 10.96.0.10, HTTP port 9080) and, in some scenarios, its versioned
// services reviews-v1 / reviews-v2 as backends.

const (
	testNS   = "bookinfo"
	reviews  = "reviews.bookinfo.svc.cluster.local"
	reviews1 = "reviews-v1.bookinfo.svc.cluster.local"
	reviews2 = "reviews-v2.bookinfo.svc.cluster.local"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func backend(host string, port uint32, subset string) l7.Backend {
	return l7.Backend{Hostname: host, Port: port, Subset: subset}
}

func weighted(host string, weight uint32) l7.WeightedBackend {
	return l7.WeightedBackend{Backend: backend(host, 9080, ""), Weight: weight}
}

func endpoints(ips ...string) []l7.Endpoint {
	var out []l7.Endpoint
	for _, s := range ips {
		out = append(out, l7.Endpoint{IP: ip(s), Port: 9080})
	}
	return out
}

func httpCluster(host string, eps ...string) l7.Cluster {
	return l7.Cluster{Backend: backend(host, 9080, ""), Protocol: l7.ProtocolHTTP, Endpoints: endpoints(eps...)}
}

// waypoint is the reviews service on port 9080 with the given routes, and clusters.
func waypoint(routes []l7.Route, clusters ...l7.Cluster) *l7.Waypoint {
	return &l7.Waypoint{
		Namespace: testNS, Name: "waypoint", TrustDomain: "cluster.local",
		Services: []l7.Service{{
			Namespace: testNS, Name: "reviews", Hostname: reviews,
			VIPs:  []netip.Addr{ip("10.96.0.10")},
			Ports: []l7.Port{{Number: 9080, Name: "http", TargetPort: 9080, Protocol: l7.ProtocolHTTP, Routes: routes}},
		}},
		Clusters: clusters,
	}
}

func versionClusters() []l7.Cluster {
	return []l7.Cluster{httpCluster(reviews1, "10.244.1.11"), httpCluster(reviews2, "10.244.2.12")}
}

func prefixAll() l7.Match { return l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/"}} }

type scenario struct {
	name string
	w    *l7.Waypoint
}

// scenarios are the e2e scenarios of issue 5, one golden file each.
func scenarios() []scenario {
	return []scenario{
		{"01-default-routes", defaultRoutes()},
		{"02-weighted", waypoint([]l7.Route{{
			Name: "HTTPRoute/bookinfo/reviews/0/0", Match: prefixAll(),
			Backends: []l7.WeightedBackend{weighted(reviews1, 90), weighted(reviews2, 10)},
		}}, versionClusters()...)},
		{"03-header-match", waypoint([]l7.Route{{
			Name: "HTTPRoute/bookinfo/reviews/0/0",
			Match: l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/"},
				Headers: []l7.StringMatch{{Name: "end-user", Value: "jason"}}},
			Backends: []l7.WeightedBackend{weighted(reviews2, 1)},
		}, {
			Name: "HTTPRoute/bookinfo/reviews/1/0", Match: prefixAll(),
			Backends: []l7.WeightedBackend{weighted(reviews1, 1)},
		}}, versionClusters()...)},
		{"04-abort-fault", waypoint([]l7.Route{{
			Name: "VirtualService/bookinfo/reviews/0/0", Match: l7.Match{Path: l7.PathMatch{Kind: l7.PathRaw, Value: "/"}},
			Backends: []l7.WeightedBackend{weighted(reviews, 0)},
			Fault:    &l7.Fault{AbortPercent: 50, AbortStatus: 500},
		}}, httpCluster(reviews, "10.244.1.5", "10.244.2.6"))},
		{"05-timeout", waypoint([]l7.Route{{
			Name: "HTTPRoute/bookinfo/reviews/0/0", Match: prefixAll(),
			Backends: []l7.WeightedBackend{weighted(reviews, 1)},
			Timeout:  time.Second,
		}}, httpCluster(reviews, "10.244.1.5"))},
		{"06-retries", waypoint([]l7.Route{{
			Name: "HTTPRoute/bookinfo/reviews/0/0", Match: prefixAll(),
			Backends: []l7.WeightedBackend{weighted(reviews, 1)},
			Retry:    &l7.Retry{Attempts: 3, On: []string{"5xx"}, PerTryTimeout: 500 * time.Millisecond},
		}}, httpCluster(reviews, "10.244.1.5"))},
		{"07-mirror", waypoint([]l7.Route{{
			Name: "HTTPRoute/bookinfo/reviews/0/0", Match: prefixAll(),
			Backends: []l7.WeightedBackend{weighted(reviews1, 1)},
			Mirrors:  []l7.Mirror{{Backend: backend(reviews2, 9080, ""), Percent: 100}},
		}}, versionClusters()...)},
		{"08-rbac", rbacScenario()},
		{"09-subsets", subsetScenario()},
		{"10-redirect-rewrite-headers", rewriteScenario()},
	}
}

func defaultRoutes() *l7.Waypoint {
	w := waypoint(nil, httpCluster(reviews, "10.244.2.6", "10.244.1.5"))
	w.Services[0].VIPs = append(w.Services[0].VIPs, ip("fd00:10:96::a"))
	w.Services[0].Ports = append(w.Services[0].Ports, l7.Port{Number: 3306, Name: "tcp-db", TargetPort: 3306, Protocol: l7.ProtocolTCP})
	w.Clusters = append(w.Clusters, l7.Cluster{
		Backend: backend(reviews, 3306, ""), Protocol: l7.ProtocolTCP,
		Endpoints: []l7.Endpoint{{IP: ip("10.244.1.5"), Port: 3306}},
	})
	return w
}

func rbacScenario() *l7.Waypoint {
	w := waypoint(nil, httpCluster(reviews, "10.244.1.5"))
	w.Policies = []l7.Policy{{
		Namespace: testNS, Name: "allow-bookinfo", Action: l7.ActionAllow,
		Rules: []l7.Rule{{From: []l7.Source{{Namespaces: []string{testNS}}}}},
	}}
	w.Services[0].Policies = []l7.Policy{{
		Namespace: testNS, Name: "deny-admin", Action: l7.ActionDeny,
		Rules: []l7.Rule{{To: []l7.Operation{{Methods: []string{"POST"}, Paths: []string{"/admin"}}}}},
	}}
	return w
}

func subsetScenario() *l7.Waypoint {
	limits := &l7.Limits{MaxConnections: 10, MaxPendingRequests: 5, MaxRequests: 20, MaxRetries: 2}
	outlier := &l7.Outlier{Consecutive5xx: 3, Interval: 5 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 50}
	sub := func(name, epIP string) l7.Cluster {
		return l7.Cluster{
			Backend: backend(reviews, 9080, name), Protocol: l7.ProtocolHTTP, Endpoints: endpoints(epIP),
			LB: l7.LBLeastRequest, Limits: limits, Outlier: outlier,
		}
	}
	return waypoint([]l7.Route{{
		Name: "VirtualService/bookinfo/reviews/0/0", Match: l7.Match{Path: l7.PathMatch{Kind: l7.PathRaw, Value: "/"}},
		Backends: []l7.WeightedBackend{
			{Backend: backend(reviews, 9080, "v1"), Weight: 50},
			{Backend: backend(reviews, 9080, "v2"), Weight: 50},
		},
	}}, sub("v1", "10.244.1.11"), sub("v2", "10.244.2.12"))
}

func rewriteScenario() *l7.Waypoint {
	return waypoint([]l7.Route{{
		Name:     "HTTPRoute/bookinfo/reviews/0/0",
		Match:    l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/old"}},
		Redirect: &l7.Redirect{Scheme: "https", Host: "reviews.example.com", PrefixRewrite: "/new", StatusCode: 301},
	}, {
		Name:     "HTTPRoute/bookinfo/reviews/1/0",
		Match:    l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: "/api"}, Method: "GET"},
		Backends: []l7.WeightedBackend{weighted(reviews1, 1)},
		Rewrite:  &l7.Rewrite{Host: "reviews-v1", PrefixRewrite: "/v1", PrefixSet: true},
		RequestHeaders: l7.HeaderMutation{
			Set: []l7.Header{{Name: "x-route", Value: "api"}}, Add: []l7.Header{{Name: "x-tag", Value: "a"}},
			Remove: []string{"x-debug"},
		},
		ResponseHeaders: l7.HeaderMutation{Set: []l7.Header{{Name: "x-served-by", Value: "waypoint"}}, Remove: []string{"server"}},
	}, {
		Name: "HTTPRoute/bookinfo/reviews/2/0", Match: prefixAll(),
		Backends: []l7.WeightedBackend{weighted(reviews1, 1)},
		Rewrite:  &l7.Rewrite{Path: "/index.html"},
	}}, httpCluster(reviews1, "10.244.1.11"))
}
