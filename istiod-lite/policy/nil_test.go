package policy

import (
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNullEntriesFailClosed: null rules, sources, operations and conditions, which YAML
// rarely produces but API clients can, are invalid and fail closed without a panic.
func TestNullEntriesFailClosed(t *testing.T) {
	rules := map[string]*securityv1beta1.Rule{
		"null rule":      nil,
		"null from":      {From: []*securityv1beta1.Rule_From{nil}},
		"null to":        {To: []*securityv1beta1.Rule_To{nil}},
		"null condition": {When: []*securityv1beta1.Condition{nil}},
		"empty from":     {From: []*securityv1beta1.Rule_From{}},
	}
	for name, rule := range rules {
		for _, action := range []securityv1beta1.AuthorizationPolicy_Action{
			securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY,
		} {
			t.Run(name+" "+action.String(), func(t *testing.T) {
				ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}}
				ap.Spec.Action = action
				ap.Spec.Rules = []*securityv1beta1.Rule{rule}
				a, problems := ConvertAuthorizationPolicy(ap, Options{})
				if len(problems) == 0 || !problems[0].Invalid {
					t.Fatalf("problems = %v, want an invalid one", problems)
				}
				checkFailsClosed(t, a, name)
			})
		}
	}
	if a, p := ConvertAuthorizationPolicy(nil, Options{}); a != nil || p != nil {
		t.Errorf("nil policy gave %v %v", a, p)
	}
	set := Build([]*securityv1.AuthorizationPolicy{nil}, []*securityv1.PeerAuthentication{nil}, Options{})
	if len(set.Authorizations) != 0 || set.PoliciesFor("shop", nil) != nil {
		t.Errorf("nil objects produced %v", set.Authorizations)
	}
	var nilSet *Set
	if nilSet.PoliciesFor("shop", map[string]string{"a": "b"}) != nil {
		t.Error("nil set lists policies")
	}
}
