// Package l7 is a waypoint's L7 configuration in Ambit's own terms: the services bound
// to the waypoint (istio.io/use-waypoint), their routes (Gateway API HTTPRoute with a
// Service parent, or Istio VirtualService), the clusters those routes reach (with
// DestinationRule subsets, connection limits and outlier detection) and the L7
// AuthorizationPolicies that target the waypoint or its services. Build translates
// Kubernetes objects into it, with a status condition for every object it cannot honour
// fully; istiod-lite/envoy turns it into Envoy xDS resources.
package l7

import (
	"net/netip"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Inputs are the Kubernetes objects a waypoint's configuration is built from. Slices may
// be in any order and may hold objects unrelated to waypoints; nil entries are skipped.
type Inputs struct {
	Namespaces            []*corev1.Namespace
	Services              []*corev1.Service
	Pods                  []*corev1.Pod // endpoints: running, ready pods with an IP selected by a service
	Gateways              []*gatewayv1.Gateway
	HTTPRoutes            []*gatewayv1.HTTPRoute
	VirtualServices       []*networkingv1.VirtualService
	DestinationRules      []*networkingv1.DestinationRule
	AuthorizationPolicies []*securityv1.AuthorizationPolicy
	DomainSuffix          string // "cluster.local" when empty
	TrustDomain           string // "cluster.local" when empty
}

// Result is Build's output: one Waypoint per Gateway of class istio-waypoint, and the
// conditions to set on the objects involved.
type Result struct {
	Waypoints map[types.NamespacedName]*Waypoint
	Status    []ObjectStatus // sorted by Ref
}

// ObjectRef names a Kubernetes object. Kind is "HTTPRoute", "VirtualService",
// "DestinationRule", "AuthorizationPolicy" or "Gateway".
type ObjectRef struct {
	Kind      string
	Namespace string
	Name      string
}

// ObjectStatus is the conditions Build determined for one object: for an HTTPRoute, the
// Gateway API route-parent conditions (Accepted, ResolvedRefs) per parent; for Istio
// kinds, an "Accepted" condition whose message lists what was not honoured. Generation
// is the object's metadata.generation the conditions describe.
type ObjectStatus struct {
	Ref        ObjectRef
	Generation int64
	Parent     string // HTTPRoute only: the parentRef ("Service/<ns>/<name>"), else empty
	Conditions []metav1.Condition
}

// Waypoint is the configuration of one waypoint (a Gateway of class istio-waypoint).
type Waypoint struct {
	Namespace   string
	Name        string
	TrustDomain string
	Services    []Service // the services bound to this waypoint, sorted by Hostname
	Clusters    []Cluster // every cluster a route or default route reaches, sorted by Name()
	Policies    []Policy  // AuthorizationPolicies targeting the Gateway, sorted by namespace/name
}

// Service is one service bound to the waypoint.
type Service struct {
	Namespace string
	Name      string
	Hostname  string       // FQDN: <name>.<namespace>.svc.<domain suffix>
	VIPs      []netip.Addr // cluster IPs, sorted; a service without one is not served
	Ports     []Port       // sorted by Number
	Policies  []Policy     // AuthorizationPolicies targeting this Service, sorted by namespace/name
}

// Protocol is how the waypoint treats a service port.
type Protocol string

// Protocols, from the service port's appProtocol or name prefix as Istio infers them.
const (
	ProtocolHTTP  Protocol = "HTTP"  // HTTP/1.1 (and h2c prior knowledge) downstream; HTTP/1.1 upstream
	ProtocolHTTP2 Protocol = "HTTP2" // HTTP/2 upstream (http2, grpc, h2c)
	ProtocolTCP   Protocol = "TCP"   // opaque TCP: no L7 processing
)

// Port is one port of a served service.
type Port struct {
	Number     uint32
	Name       string
	TargetPort uint32 // numeric target port; 0 when named (resolved per endpoint)
	Protocol   Protocol
	// Routes in match order (first match wins). Empty: one default route to the
	// service's own cluster for this port.
	Routes []Route
}

// Route is one match and what to do with a request that matches it.
type Route struct {
	Name  string // "<kind>/<namespace>/<name>/<rule index>/<match index>"
	Match Match
	// Exactly one of Backends (forward) and Redirect is set.
	Backends        []WeightedBackend
	Redirect        *Redirect
	Rewrite         *Rewrite
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
	Mirrors         []Mirror
	Timeout         time.Duration // whole request; 0: none
	Retry           *Retry
	Fault           *Fault
}

// Match selects requests; every set field must match.
type Match struct {
	Path    PathMatch
	Headers []StringMatch
	Query   []StringMatch
	Method  string // empty: any
}

// PathMatchKind is how a path is compared.
type PathMatchKind string

// Path match kinds, as Gateway API's HTTPPathMatch types.
const (
	PathAny    PathMatchKind = ""                  // any path
	PathExact  PathMatchKind = "Exact"             // equal
	PathPrefix PathMatchKind = "PathPrefix"        // whole path segments ("/a" matches "/a" and "/a/b", not "/ab")
	PathRaw    PathMatchKind = "Prefix"            // plain string prefix (VirtualService uri.prefix)
	PathRegex  PathMatchKind = "RegularExpression" // RE2, whole path
)

// PathMatch is a request path condition.
type PathMatch struct {
	Kind  PathMatchKind
	Value string
}

// StringMatch compares a header or query parameter by name.
type StringMatch struct {
	Name   string // header names lowercase
	Regex  bool   // Value is an RE2 matched against the whole value; else exact
	Value  string
	Invert bool
}

// Backend names a cluster: a service port, optionally a DestinationRule subset.
type Backend struct {
	Hostname string
	Port     uint32
	Subset   string
}

// Name is the Envoy cluster name: "outbound|<port>|<subset>|<hostname>".
func (b Backend) Name() string {
	return "outbound|" + uitoa(b.Port) + "|" + b.Subset + "|" + b.Hostname
}

// WeightedBackend is a backend and its share of the route's requests (weights are
// relative; a route with one backend may have weight 0 meaning 1).
type WeightedBackend struct {
	Backend
	Weight uint32
}

// Redirect answers with a redirect instead of forwarding. Empty fields keep the
// request's value.
type Redirect struct {
	Scheme        string
	Host          string
	Port          uint32
	Path          string // full replacement
	PrefixRewrite string // replaces the matched prefix (PathPrefix matches only)
	StatusCode    int    // 301, 302, 303, 307 or 308; 0 means 302
}

// Rewrite changes the forwarded request.
type Rewrite struct {
	Host          string // replaces Host/:authority when non-empty
	Path          string // full path replacement when non-empty
	PrefixRewrite string // replaces the matched prefix (PathPrefix/Prefix matches only); "" with PrefixSet is "/"
	PrefixSet     bool
}

// Header is a header name (lowercase) and value.
type Header struct {
	Name  string
	Value string
}

// HeaderMutation edits headers: Set overwrites, Add appends, Remove deletes.
type HeaderMutation struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Mirror sends a copy of Percent % of the requests to Backend, ignoring its responses.
type Mirror struct {
	Backend Backend
	Percent float64 // 0 < Percent <= 100
}

// Retry retries failed attempts.
type Retry struct {
	Attempts      uint32        // retries after the first attempt
	PerTryTimeout time.Duration // 0: the route timeout
	On            []string      // Envoy retry_on conditions, e.g. "5xx", "connect-failure"
	StatusCodes   []uint32      // retriable-status-codes
}

// Fault injects delays and aborts into a share of requests.
type Fault struct {
	DelayPercent float64 // 0..100
	Delay        time.Duration
	AbortPercent float64 // 0..100
	AbortStatus  uint32
}

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy string

// Load-balancing policies, from DestinationRule loadBalancer.simple.
const (
	LBRoundRobin   LBPolicy = "ROUND_ROBIN"
	LBLeastRequest LBPolicy = "LEAST_REQUEST"
	LBRandom       LBPolicy = "RANDOM"
)

// Cluster is a set of endpoints a route forwards to, and how.
type Cluster struct {
	Backend
	Protocol  Protocol   // upstream protocol: ProtocolHTTP2 or ProtocolHTTP
	Endpoints []Endpoint // sorted by IP then port
	LB        LBPolicy   // "" is round robin
	Limits    *Limits
	Outlier   *Outlier
}

// Endpoint is one destination pod of a cluster.
type Endpoint struct {
	IP   netip.Addr
	Port uint32 // target port on the pod
}

// Limits are circuit-breaker thresholds (DestinationRule connectionPool); 0 is unset.
type Limits struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
}

// Outlier is passive health checking (DestinationRule outlierDetection).
type Outlier struct {
	Consecutive5xx     uint32
	Interval           time.Duration
	BaseEjectionTime   time.Duration
	MaxEjectionPercent uint32
}

// Action is what a matching authorization policy does.
type Action string

// Actions of L7 authorization policies.
const (
	ActionAllow Action = "ALLOW"
	ActionDeny  Action = "DENY"
)

// Policy is an L7 AuthorizationPolicy, already reduced to what the waypoint enforces:
// fields it cannot evaluate were removed from DENY rules (they deny more) and ALLOW
// rules holding them were dropped (they allow less). An ALLOW policy with no rules
// matches nothing, so it still denies everything no other ALLOW policy allows.
type Policy struct {
	Namespace string
	Name      string
	Action    Action
	Rules     []Rule
}

// Rule matches when every non-empty section matches: any From, any To, every When.
// A rule with all sections empty matches every request.
type Rule struct {
	From []Source
	To   []Operation
	When []Condition
}

// Source is the peer condition of a rule: each non-empty list must match (a value of a
// list matches like Istio's: exact, "prefix*", "*suffix" or "*").
type Source struct {
	Principals    []string // SPIFFE IDs without "spiffe://"
	NotPrincipals []string
	Namespaces    []string
	NotNamespaces []string
}

// Operation is the request condition of a rule, like Source.
type Operation struct {
	Hosts      []string
	NotHosts   []string
	Ports      []string
	NotPorts   []string
	Methods    []string
	NotMethods []string
	Paths      []string
	NotPaths   []string
}

// Condition is a `when` entry; Key is "request.headers[<name>]" (name lowercase).
type Condition struct {
	Key       string
	Values    []string
	NotValues []string
}

func uitoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
