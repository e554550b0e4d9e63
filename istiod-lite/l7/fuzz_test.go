package l7

import (
	"reflect"
	"slices"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// fuzzObjects are objects decoded from fuzz YAML and added to the fixture.
type fuzzObjects struct {
	Namespaces            []*corev1.Namespace               `json:"namespaces"`
	Services              []*corev1.Service                 `json:"services"`
	Pods                  []*corev1.Pod                     `json:"pods"`
	Gateways              []*gatewayv1.Gateway              `json:"gateways"`
	HTTPRoutes            []*gatewayv1.HTTPRoute            `json:"httpRoutes"`
	VirtualServices       []*networkingv1.VirtualService    `json:"virtualServices"`
	DestinationRules      []*networkingv1.DestinationRule   `json:"destinationRules"`
	AuthorizationPolicies []*securityv1.AuthorizationPolicy `json:"authorizationPolicies"`
}

// FuzzBuild feeds arbitrary objects (beside the fixture's) through Build: it never
// panics, its result does not depend on input order, and every route is well formed
// and reaches only clusters that exist.
func FuzzBuild(f *testing.F) {
	for _, seed := range []string{
		`{httpRoutes: [` + hr(`[{matches: [{path: {type: RegularExpression, value: "(("}}], backendRefs: [{name: reviews, port: 9080, weight: -1}]},
			{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: ratings, port: 8080}, fraction: {numerator: 5, denominator: 0}}}]}]`) + `]}`,
		`{httpRoutes: [` + hr(`[{filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}}},
			{type: RequestMirror, requestMirror: {backendRef: {name: reviews, port: 9080}}}], matches: [{path: {value: "/a?b"}}, {}]}]`) + `]}`,
		`{virtualServices: [` + vsYAML(`[{match: [{uri: {regex: "[a"}}, {headers: {"": {exact: "\n"}}}], route: [{destination: {host: reviews, subset: v1}, weight: 0},
			{destination: {host: ratings}, weight: 0}], fault: {abort: {httpStatus: 500, percentage: {value: 120}}}}]`) + `],
			destinationRules: [` + subsetsDR + `]}`,
		`{virtualServices: [` + vsYAML(`[{rewrite: {uri: /x}, match: [{uri: {prefix: /p}, ignoreUriCase: true}], route: [{destination: {host: reviews}}],
			retries: {attempts: 9999, retryOn: ",,,"}, mirrors: [{destination: {host: gone}}], mirrorPercentage: {value: -1}}]`) + `]}`,
		`{authorizationPolicies: [{metadata: {name: p, namespace: shop}, spec: {targetRefs: [{kind: Service, name: reviews}, null],
			action: DENY, rules: [null, {from: [{source: {ipBlocks: [x]}}]}, {when: [{key: "request.headers[]", values: [a]}]}]}}]}`,
		`{services: [{metadata: {name: reviews, namespace: shop}, spec: {clusterIPs: ["::ffff:1.2.3.4", "fe80::1%eth0", x],
			ports: [{port: 70000}, {port: 80, protocol: UDP}, {port: 81, targetPort: -5, appProtocol: grpc}]}}],
			pods: [{metadata: {name: z, namespace: shop}, status: {podIP: "::1"}}]}`,
		`{destinationRules: [{metadata: {name: d, namespace: shop}, spec: {host: reviews, trafficPolicy: {outlierDetection: {interval: -1s,
			consecutive5xxErrors: 0}, connectionPool: {tcp: {maxConnections: -3}}}, subsets: [{name: v1, trafficPolicy: {}}]}}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var objs fuzzObjects
		if err := yaml.Unmarshal([]byte(doc), &objs); err != nil {
			return
		}
		in := fixture(t)
		in.Namespaces = append(in.Namespaces, objs.Namespaces...)
		in.Services = append(in.Services, objs.Services...)
		in.Pods = append(in.Pods, objs.Pods...)
		in.Gateways = append(in.Gateways, objs.Gateways...)
		in.HTTPRoutes = objs.HTTPRoutes
		in.VirtualServices = objs.VirtualServices
		in.DestinationRules = objs.DestinationRules
		in.AuthorizationPolicies = objs.AuthorizationPolicies
		res := Build(in)
		checkWellFormed(t, res)
		if again := Build(reversed(in)); !reflect.DeepEqual(res, again) {
			t.Fatalf("result depends on input order")
		}
	})
}

// reversed returns in with every object list in reverse name order. Objects with equal
// namespace/name keep their relative order (Build keeps the first of duplicates).
func reversed(in Inputs) Inputs {
	in.Namespaces = reverseNames(in.Namespaces)
	in.Services = reverseNames(in.Services)
	in.Pods = reverseNames(in.Pods)
	in.Gateways = reverseNames(in.Gateways)
	in.HTTPRoutes = reverseNames(in.HTTPRoutes)
	in.VirtualServices = reverseNames(in.VirtualServices)
	in.DestinationRules = reverseNames(in.DestinationRules)
	in.AuthorizationPolicies = reverseNames(in.AuthorizationPolicies)
	return in
}

func reverseNames[T interface {
	comparable
	metav1.Object
}](s []T) []T {
	var zero T
	out := slices.Clone(s)
	slices.SortStableFunc(out, func(a, b T) int {
		switch {
		case a == zero && b == zero:
			return 0
		case a == zero:
			return 1
		case b == zero:
			return -1
		}
		return compareNames(b, a)
	})
	return out
}
