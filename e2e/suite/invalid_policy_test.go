package suite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/testbed"
)

// TestE2EInvalidPolicyFailsClosed applies AuthorizationPolicies that the API server
// accepts but that make no sense (F-SEC-6): an invalid ALLOW allows nothing, an
// invalid DENY denies everything it selects, each gets a Warning Event, and nothing
// crashes.
func TestE2EInvalidPolicyFailsClosed(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	pe := startPolicyEnvIn(ctx, t, "e2e-invalid")
	for _, tc := range []struct {
		name, policy string
	}{
		{"invalid ALLOW allows nothing", ap("bad-allow", "e2e-invalid", "ALLOW", "", `[{from: [{source: {ipBlocks: ["10.0.0.300/8"]}}]}]`)},
		{"invalid DENY denies everything", ap("bad-deny", "e2e-invalid", "DENY", "", `[{from: [{source: {ipBlocks: ["not-an-address"]}}]}]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applyYAML(ctx, t, tc.policy)
			name := policyNames(tc.policy)[0]
			if err := waitPolicy(ctx, "node-b", name); err != nil {
				t.Fatal(err)
			}
			if err := pe.expect(ctx, probe{"client", 9000, false}); err != nil {
				t.Error(err)
			}
			_, obj, _ := strings.Cut(name, "/")
			err := testbed.Poll(ctx, "warning event for "+name, func(ctx context.Context) (bool, error) {
				l, err := env.Client.CoreV1().Events("e2e-invalid").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + obj})
				if err != nil {
					return false, err
				}
				for _, e := range l.Items {
					if e.Type == "Warning" && e.InvolvedObject.Kind == "AuthorizationPolicy" {
						t.Logf("event: %s: %s", e.Reason, e.Message)
						return true, nil
					}
				}
				return false, fmt.Errorf("%d events", len(l.Items))
			})
			if err != nil {
				t.Error(err)
			}
			deleteYAML(ctx, t, tc.policy)
			if err := waitPolicyGone(ctx, "node-b", name); err != nil {
				t.Fatal(err)
			}
			if err := pe.expect(ctx, probe{"client", 9000, true}); err != nil {
				t.Error(err)
			}
		})
	}
}
