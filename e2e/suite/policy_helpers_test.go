package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ambitmesh/ambit/e2e/charts"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

// applyYAML applies Kubernetes YAML documents; they are deleted when the test ends.
func applyYAML(ctx context.Context, t *testing.T, doc string) {
	t.Helper()
	objs, err := charts.Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteYAML(context.WithoutCancel(ctx), t, doc) })
}

// deleteYAML deletes the objects of the documents (absent ones are fine).
func deleteYAML(ctx context.Context, t *testing.T, doc string) {
	t.Helper()
	cmd := env.Kube.Kubectl(ctx, kubeBin(), "delete", "--ignore-not-found", "-f", "-")
	cmd.Stdin = strings.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("delete: %v: %s", err, out)
	}
}

// waitPolicy waits until node's ztunnel holds every named Authorization ("ns/name").
func waitPolicy(ctx context.Context, node string, names ...string) error {
	return testbed.Poll(ctx, fmt.Sprintf("policies %v on %s", names, node), func(context.Context) (bool, error) {
		have, err := ztunnelPolicies(node)
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if !slices.Contains(have, n) {
				return false, fmt.Errorf("have %v", have)
			}
		}
		return true, nil
	})
}

// ztunnelPolicies lists the Authorization resources node's ztunnel holds, as "ns/name".
func ztunnelPolicies(node string) ([]string, error) {
	d, err := ztunnelDump(node)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, raw := range d.Policies {
		var p struct{ Name, Namespace string }
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decode policy: %w", err)
		}
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out, nil
}

// kubeBin is the directory of kubectl and the other kube tools.
func kubeBin() string { return os.Getenv("AMBIT_KUBE_BIN") }

// waitPolicyGone waits until node's ztunnel holds none of the named Authorizations.
func waitPolicyGone(ctx context.Context, node string, names ...string) error {
	return testbed.Poll(ctx, fmt.Sprintf("policies %v gone from %s", names, node), func(context.Context) (bool, error) {
		have, err := ztunnelPolicies(node)
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if slices.Contains(have, n) {
				return false, fmt.Errorf("still have %v", have)
			}
		}
		return true, nil
	})
}
