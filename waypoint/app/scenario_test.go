package app

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

// The test scenario: service reviews (HTTP, routes for every F-WP-4/5 behaviour, an
// L7 DENY), db (TCP) and ratings (redirect, circuit breakers, outlier detection), with
// two backend pods v1 (127.0.0.11) and v2 (127.0.0.12).

const (
	reviewsFQDN = "reviews.demo.svc.cluster.local"
	dbFQDN      = "db.demo.svc.cluster.local"
	ratingsFQDN = "ratings.demo.svc.cluster.local"
	ratings     = "http://" + ratingsFQDN + ":9080"
	reviews     = "http://" + reviewsFQDN + ":9080"
)

var (
	clusterV1 = envoytest.ClusterName(9080, "v1", reviewsFQDN)
	clusterV2 = envoytest.ClusterName(9080, "v2", reviewsFQDN)
)

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(c string) *routev3.RouteAction {
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}, Timeout: durationpb.New(0)}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// testRoutes covers the behaviours of F-WP-4/5 on service reviews.
func testRoutes() []*routev3.Route {
	split := &routev3.RouteAction{Timeout: durationpb.New(0), ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
			{Name: clusterV1, Weight: wrapperspb.UInt32(90)}, {Name: clusterV2, Weight: wrapperspb.UInt32(10)},
		}},
	}}
	timeout := toCluster(clusterV1)
	timeout.Timeout = durationpb.New(200 * time.Millisecond)
	retry := toCluster(clusterV1)
	retry.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2)}
	mirror := toCluster(clusterV1)
	mirror.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: clusterV2,
		RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}}}
	abort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
		Percentage: &typev3.FractionalPercent{Numerator: 500000, Denominator: typev3.FractionalPercent_MILLION},
	}}
	header := prefix("/")
	header.Headers = []*routev3.HeaderMatcher{{Name: "x-version", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "v2"}}}}}
	name := func(i int) string { return fmt.Sprintf("HTTPRoute/demo/reviews/%d/0", i) }
	return []*routev3.Route{
		{Name: name(0), Match: header, Action: &routev3.Route_Route{Route: toCluster(clusterV2)}},
		{Name: name(1), Match: prefix("/split"), Action: &routev3.Route_Route{Route: split}},
		{Name: name(2), Match: prefix("/abort"), Action: &routev3.Route_Route{Route: toCluster(clusterV1)},
			TypedPerFilterConfig: map[string]*anypb.Any{config.FilterFault: mustAny(abort)}},
		{Name: name(3), Match: prefix("/timeout"), Action: &routev3.Route_Route{Route: timeout}},
		{Name: name(4), Match: prefix("/retry"), Action: &routev3.Route_Route{Route: retry}},
		{Name: name(5), Match: prefix("/mirror"), Action: &routev3.Route_Route{Route: mirror}},
		{Name: name(7), Match: prefix("/h2up"), Action: &routev3.Route_Route{Route: toCluster(envoytest.ClusterName(9080, "h2", reviewsFQDN))}},
		{Name: name(6), Match: prefix("/"), Action: &routev3.Route_Route{Route: toCluster(clusterV1)}},
	}
}

// denyPostAdmin is an L7 DENY on POST /admin, as istiod-lite translates an
// AuthorizationPolicy (issue5.md section 3).
func denyPostAdmin() *rbacv3filter.RBAC {
	or := func(p *rbacconfigv3.Permission) *rbacconfigv3.Permission {
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: []*rbacconfigv3.Permission{p}}}}
	}
	path := &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
		Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/admin"}}}}}}
	method := &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "POST"}}}}}}
	return &rbacv3filter.RBAC{Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{
		"ns[demo]-policy[deny-admin]-rule[0]": {
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{
				Rules: []*rbacconfigv3.Permission{or(path), or(method)}}}}},
			Principals: []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
		},
	}}}
}

func testServices(routes []*routev3.Route) []envoytest.Service {
	v1 := envoytest.Endpoint{Destination: "127.0.0.11:9080", Address: "127.0.0.11:15008"}
	v2 := envoytest.Endpoint{Destination: "127.0.0.12:9080", Address: "127.0.0.12:15008"}
	return []envoytest.Service{
		{FQDN: reviewsFQDN, VIP: "10.96.0.10", Port: 9080, Routes: routes, RBAC: []*rbacv3filter.RBAC{denyPostAdmin()},
			Backends: []envoytest.Backend{
				{Endpoints: []envoytest.Endpoint{v1, v2}},
				{Subset: "v1", Endpoints: []envoytest.Endpoint{v1}},
				{Subset: "v2", Endpoints: []envoytest.Endpoint{v2}},
				{Subset: "h2", H2: true, Endpoints: []envoytest.Endpoint{v2}},
			}},
		{FQDN: dbFQDN, VIP: "10.96.0.11", Port: 5432, TCP: true, Backends: []envoytest.Backend{{Endpoints: []envoytest.Endpoint{v1}}}},
		{FQDN: ratingsFQDN, VIP: "10.96.0.12", Port: 9080, Routes: ratingsRoutes(), Backends: []envoytest.Backend{
			{Endpoints: []envoytest.Endpoint{v1, v2}, Outlier: &clusterv3.OutlierDetection{
				Consecutive_5Xx: wrapperspb.UInt32(3), Interval: durationpb.New(10 * time.Second),
				BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionPercent: wrapperspb.UInt32(100),
			}},
			{Subset: "limited", Endpoints: []envoytest.Endpoint{v1}, CircuitBreakers: &clusterv3.CircuitBreakers{
				Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(1)}},
			}},
			{Subset: "empty"},
			{Subset: "pool", Endpoints: []envoytest.Endpoint{v1}, CircuitBreakers: &clusterv3.CircuitBreakers{
				Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1)}},
			}},
		}},
	}
}

// ratingsRoutes: a redirect, a circuit-broken cluster and an outlier-detected default.
func ratingsRoutes() []*routev3.Route {
	return []*routev3.Route{
		{Name: "HTTPRoute/demo/ratings/0/0", Match: prefix("/redirect"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			HostRedirect: "example.com", PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
			ResponseCode: routev3.RedirectAction_MOVED_PERMANENTLY,
		}}},
		{Name: "HTTPRoute/demo/ratings/3/0", Match: prefix("/empty"), Action: &routev3.Route_Route{Route: toCluster(envoytest.ClusterName(9080, "empty", ratingsFQDN))}},
		{Name: "HTTPRoute/demo/ratings/2/0", Match: prefix("/hold-pool"), Action: &routev3.Route_Route{Route: toCluster(envoytest.ClusterName(9080, "pool", ratingsFQDN))}},
		{Name: "HTTPRoute/demo/ratings/1/0", Match: prefix("/hold"), Action: &routev3.Route_Route{Route: toCluster(envoytest.ClusterName(9080, "limited", ratingsFQDN))}},
		{Name: "default", Match: prefix("/"), Action: &routev3.Route_Route{Route: toCluster(envoytest.ClusterName(9080, "", ratingsFQDN))}},
	}
}
