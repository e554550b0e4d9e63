package xds

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/workloadapi/security"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

const static = "istio-system/istio_converted_static_strict"

// policySnapshot is the two-pod namespace with an ALLOW policy selecting the pods and,
// unless denied is nil, a namespace-wide DENY of the denied namespaces, plus any
// PeerAuthentications.
func policySnapshot(denied []string, pas ...*securityv1.PeerAuthentication) *kubefile.Snapshot {
	s := snapshot(map[string]string{"web-a": "10.244.0.1", "web-b": "10.244.0.2"})
	s.AuthorizationPolicies = []*securityv1.AuthorizationPolicy{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "allow-sleep", Namespace: "shop"},
			Spec: securityv1beta1.AuthorizationPolicy{
				Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "web"}},
				Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{
					Source: &securityv1beta1.Source{Namespaces: []string{"sleep"}},
				}}}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-ns", Namespace: "shop"},
			Spec: securityv1beta1.AuthorizationPolicy{
				Action: securityv1beta1.AuthorizationPolicy_DENY,
				Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{
					Source: &securityv1beta1.Source{Namespaces: denied},
				}}}},
			},
		},
	}
	if denied == nil {
		s.AuthorizationPolicies = s.AuthorizationPolicies[:1]
	}
	s.PeerAuthentications = pas
	return s
}

func sameAuthz(held map[string]*security.Authorization, m *model.Model) bool {
	if len(held) != len(m.Authorizations) {
		return false
	}
	for name, a := range m.Authorizations {
		if !proto.Equal(held[name], a) {
			return false
		}
	}
	return true
}

// TestPolicyChangePushesOnlyThatPolicy walks F-CP-2 for policies (and the push F-SEC-5
// relies on): the first push carries every Authorization; changing one policy pushes
// exactly that resource and no Address; a STRICT PeerAuthentication pushes the static
// policy and the workloads that now list it.
func TestPolicyChangePushesOnlyThatPolicy(t *testing.T) {
	m0 := model.Build(policySnapshot([]string{"evil"}), model.Options{})
	e := newEnv(t, m0)
	if got := e.store.policies(); !sameAuthz(got, m0) {
		t.Fatalf("initial policies = %v, want %v", got, m0.Authorizations)
	}

	strict := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "istio-system"}}
	strict.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_STRICT}
	steps := []struct {
		name   string
		m      *model.Model
		pushes []push
	}{
		{"unchanged rebuild", model.Build(policySnapshot([]string{"evil"}), model.Options{}), nil},
		{"one policy changed", model.Build(policySnapshot([]string{"evil", "worse"}), model.Options{}),
			[]push{{typeURL: TypeAuthorization, upserts: []string{"shop/deny-ns"}}}},
		{"mesh STRICT added", model.Build(policySnapshot([]string{"evil", "worse"}, strict), model.Options{}),
			[]push{{typeURL: TypeAuthorization, upserts: []string{static}}, {typeURL: TypeAddress, upserts: []string{uidA, uidB}}}},
		{"policy removed", model.Build(policySnapshot(nil, strict), model.Options{}),
			[]push{{typeURL: TypeAuthorization, removed: []string{"shop/deny-ns"}}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before, _ := e.store.state()
			e.srv.Update(s.m)
			if s.pushes == nil {
				return // checked by the next step seeing exactly its own pushes
			}
			got := e.store.nextPushes(t, len(before), len(s.pushes))
			// One push per type, in either order: sort by type URL as s.pushes is.
			slices.SortFunc(got, func(a, b push) int { return strings.Compare(a.typeURL, b.typeURL) })
			if len(got) != len(s.pushes) {
				t.Fatalf("pushes = %+v, want %+v", got, s.pushes)
			}
			for i, want := range s.pushes {
				if !samePush(got[i], want.typeURL, want.upserts, want.removed) {
					t.Fatalf("pushes = %+v, want %+v", got, s.pushes)
				}
			}
			if held := e.store.policies(); !sameAuthz(held, s.m) {
				t.Errorf("client holds %v, want %v", held, s.m.Authorizations)
			}
		})
	}
	_, addrs := e.store.state()
	if got := addrs[uidA].GetWorkload().GetAuthorizationPolicies(); !slices.Equal(got, []string{"shop/allow-sleep", static}) {
		t.Errorf("workload lists %v", got)
	}
}
