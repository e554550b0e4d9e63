package l7

import (
	"reflect"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const gatewayTarget = `targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp}]`

func TestAuthorizationPolicyMapping(t *testing.T) {
	tests := []struct {
		name      string
		spec      string // after the target
		annot     string
		want      *Policy // nil: not attached
		reason    string
		fragments []string
	}{
		{
			name: "allow with every supported field",
			spec: `rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b"], notNamespaces: [evil]}}],
				to: [{operation: {paths: ["/admin*"], notPaths: ["*.png"], methods: [POST], hosts: [x.example], ports: ["8080"]}}],
				when: [{key: "request.headers[X-Token]", values: [abc], notValues: ["*"]}]}]`,
			want: &Policy{Action: ActionAllow, Rules: []Rule{{
				From: []Source{{Principals: []string{"cluster.local/ns/a/sa/b"}, NotNamespaces: []string{"evil"}}},
				To:   []Operation{{Paths: []string{"/admin*"}, NotPaths: []string{"*.png"}, Methods: []string{"POST"}, Hosts: []string{"x.example"}, Ports: []string{"8080"}}},
				When: []Condition{{Key: "request.headers[x-token]", Values: []string{"abc"}, NotValues: []string{"*"}}},
			}}},
			reason: ReasonAccepted,
		},
		{
			name: "service accounts become principals of any trust domain",
			spec: `rules: [{from: [{source: {serviceAccounts: [sleep, other/x], notServiceAccounts: [bad]}}]}]`,
			want: &Policy{Action: ActionAllow, Rules: []Rule{{From: []Source{{
				Principals: []string{"*/ns/shop/sa/sleep", "*/ns/other/sa/x"}, NotPrincipals: []string{"*/ns/shop/sa/bad"}}}}}},
			reason: ReasonAccepted,
		},
		{
			name:      "ALLOW rule with ipBlocks never matches",
			spec:      `rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}, {to: [{operation: {methods: [GET]}}]}]`,
			want:      &Policy{Action: ActionAllow, Rules: []Rule{{To: []Operation{{Methods: []string{"GET"}}}}}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"rules[0]: ipBlocks", "never matches"},
		},
		{
			name:      "ALLOW rule with requestPrincipals only: allows nothing",
			spec:      `rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]`,
			want:      &Policy{Action: ActionAllow},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"requestPrincipals"},
		},
		{
			name:      "DENY rule drops ipBlocks and denies more",
			spec:      `action: DENY, rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}], to: [{operation: {methods: [POST], paths: [/admin]}}]}]`,
			want:      &Policy{Action: ActionDeny, Rules: []Rule{{To: []Operation{{Methods: []string{"POST"}, Paths: []string{"/admin"}}}}}},
			reason:    ReasonUnsupportedValue,
			fragments: []string{"ipBlocks", "denies more"},
		},
		{
			name:   "DENY rule keeps what it can of a source",
			spec:   `action: DENY, rules: [{from: [{source: {principals: [a], remoteIpBlocks: [1.2.3.4], trustDomains: [td]}}]}]`,
			want:   &Policy{Action: ActionDeny, Rules: []Rule{{From: []Source{{Principals: []string{"a"}}}}}},
			reason: ReasonUnsupportedValue, fragments: []string{"remoteIpBlocks, trustDomains"},
		},
		{
			name:   "DENY rule drops unsupported when keys",
			spec:   `action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}], when: [{key: source.ip, values: [10.0.0.1]}, {key: "request.auth.claims[iss]", values: [x]}]}]`,
			want:   &Policy{Action: ActionDeny, Rules: []Rule{{To: []Operation{{Methods: []string{"DELETE"}}}}}},
			reason: ReasonUnsupportedValue, fragments: []string{"request.auth.claims[iss], source.ip"},
		},
		{
			name:   "ALLOW rule with an unsupported when key never matches",
			spec:   `rules: [{when: [{key: source.ip, values: [10.0.0.1]}]}]`,
			want:   &Policy{Action: ActionAllow},
			reason: ReasonUnsupportedValue, fragments: []string{"source.ip"},
		},
		{
			name:   "DENY path template denies every path",
			spec:   `action: DENY, rules: [{to: [{operation: {paths: ["/a/{*}/b"]}}]}]`,
			want:   &Policy{Action: ActionDeny, Rules: []Rule{{}}},
			reason: ReasonUnsupportedValue, fragments: []string{"paths"},
		},
		{
			name:   "mid-value wildcard in an ALLOW host",
			spec:   `rules: [{to: [{operation: {hosts: ["a*b"]}}]}]`,
			want:   &Policy{Action: ActionAllow},
			reason: ReasonUnsupportedValue, fragments: []string{"hosts"},
		},
		{
			name:   "CUSTOM is enforced as DENY",
			spec:   `action: CUSTOM, provider: {name: ext}, rules: [{to: [{operation: {paths: [/x]}}]}]`,
			want:   &Policy{Action: ActionDeny, Rules: []Rule{{To: []Operation{{Paths: []string{"/x"}}}}}},
			reason: ReasonUnsupportedValue, fragments: []string{"CUSTOM"},
		},
		{
			name:   "AUDIT is not enforced",
			spec:   `action: AUDIT, rules: [{}]`,
			reason: ReasonUnsupportedValue, fragments: []string{"AUDIT"},
		},
		{
			name:   "dry-run is not enforced",
			spec:   `action: DENY, rules: [{}]`,
			annot:  "true",
			reason: ReasonUnsupportedValue, fragments: []string{"dry-run"},
		},
		{
			name:   "invalid ALLOW allows nothing",
			spec:   `rules: [{from: [{source: {ipBlocks: [not-an-ip]}}]}, {}]`,
			want:   &Policy{Action: ActionAllow},
			reason: ReasonInvalid, fragments: []string{"not-an-ip", "ALLOW of nothing"},
		},
		{
			name:   "invalid DENY denies everything",
			spec:   `action: DENY, rules: [{to: [{operation: {ports: [http]}}]}]`,
			want:   &Policy{Action: ActionDeny, Rules: []Rule{{}}},
			reason: ReasonInvalid, fragments: []string{"bad port", "DENY of every request"},
		},
		{
			name:   "DENY without rules never matches",
			spec:   `action: DENY`,
			want:   &Policy{Action: ActionDeny},
			reason: ReasonAccepted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			ap := authz(t, `{metadata: {name: p, namespace: shop}, spec: {`+gatewayTarget+`, `+tc.spec+`}}`)
			if tc.annot != "" {
				ap.Annotations = map[string]string{"istio.io/dry-run": tc.annot}
			}
			in.AuthorizationPolicies = []*securityv1.AuthorizationPolicy{ap}
			res := Build(in)
			checkWellFormed(t, res)
			got := res.Waypoints[wpKey].Policies
			switch {
			case tc.want == nil && len(got) != 0:
				t.Fatalf("policies = %+v, want none", got)
			case tc.want != nil:
				want := *tc.want
				want.Namespace, want.Name = "shop", "p"
				if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
					t.Fatalf("policies =\n%+v\nwant\n%+v", got, want)
				}
			}
			status := metav1.ConditionFalse
			if tc.reason == ReasonAccepted {
				status = metav1.ConditionTrue
			}
			wantCondition(t, statusOf(t, res, KindAuthorizationPolicy, "p", ""), ConditionAccepted, status, tc.reason, tc.fragments...)
		})
	}
}

func TestAuthorizationPolicyTargets(t *testing.T) {
	tests := []struct {
		name, target     string
		onWaypoint       bool
		onService        string
		reason, fragment string
	}{
		{"gateway", gatewayTarget, true, "", ReasonAccepted, ""},
		{"singular targetRef", `targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: wp}`, true, "", ReasonAccepted, ""},
		{"service", `targetRefs: [{kind: Service, group: "", name: reviews}]`, false, "reviews", ReasonAccepted, ""},
		{"both", `targetRefs: [{kind: Service, name: ratings}, {kind: Gateway, group: gateway.networking.k8s.io, name: wp}]`, true, "ratings", ReasonAccepted, ""},
		{"unbound service", `targetRefs: [{kind: Service, name: nope}]`, false, "", ReasonTargetNotFound, "not served by a waypoint"},
		{"not a waypoint", `targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]`, false, "", ReasonTargetNotFound, "not a waypoint"},
		{"other namespace", `targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp, namespace: other}]`, false, "", ReasonUnsupportedValue, "another namespace"},
		{"gateway class", `targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]`, false, "", ReasonUnsupportedValue, "GatewayClass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.AuthorizationPolicies = []*securityv1.AuthorizationPolicy{
				authz(t, `{metadata: {name: p, namespace: shop}, spec: {`+tc.target+`, action: DENY, rules: [{}]}}`),
				authz(t, `{metadata: {name: ztunnel, namespace: shop}, spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{}]}}`),
			}
			res := Build(in)
			checkWellFormed(t, res)
			if got := len(res.Waypoints[wpKey].Policies) == 1; got != tc.onWaypoint {
				t.Errorf("on waypoint = %v, want %v", got, tc.onWaypoint)
			}
			for _, name := range []string{"reviews", "ratings"} {
				if got, want := len(service(t, res, name).Policies), boolInt(tc.onService == name); got != want {
					t.Errorf("%s policies = %d, want %d", name, got, want)
				}
			}
			status := metav1.ConditionFalse
			if tc.reason == ReasonAccepted {
				status = metav1.ConditionTrue
			}
			wantCondition(t, statusOf(t, res, KindAuthorizationPolicy, "p", ""), ConditionAccepted, status, tc.reason, tc.fragment)
			for _, s := range res.Status {
				if s.Ref.Name == "ztunnel" {
					t.Errorf("selector policy got a waypoint status: %+v", s)
				}
			}
		})
	}
}
