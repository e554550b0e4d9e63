package model

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden builds each testdata/<case>.yaml with default options and compares the
// model (addresses as protojson, enrolment, identities per node) to <case>.golden.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			snap := loadFile(t, in)
			got := render(t, snap, Build(snap, Options{}))
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("model differs from %s (run go test -update to accept):\n%s", golden, got)
			}
		})
	}
}

// loadFile loads one manifest file through kubefile, as istiod-lite's file source does.
func loadFile(t *testing.T, path string) *kubefile.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := kubefile.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return snap
}

// render gives a stable, indented JSON view of a model.
func render(t *testing.T, snap *kubefile.Snapshot, m *Model) []byte {
	t.Helper()
	view := struct {
		Addresses  map[string]any      `json:"addresses"`
		Enrolled   []string            `json:"enrolled"`
		Identities map[string][]string `json:"identitiesOnNode"`
		IPs        map[string][]string `json:"ips"` // addresses decoded, for reviewers
		// Authorizations and Problems are left out of goldens without policies.
		Authorizations map[string]any `json:"authorizations,omitempty"`
		Problems       []string       `json:"problems,omitempty"`
	}{Addresses: map[string]any{}, Enrolled: []string{}, Identities: map[string][]string{}, IPs: map[string][]string{},
		Authorizations: map[string]any{}}
	for name, a := range m.Addresses.All() {
		view.Addresses[name] = jsonView(t, a)
		view.IPs[name] = decodeIPs(a)
	}
	for name, a := range m.Authorizations {
		view.Authorizations[name] = jsonView(t, a)
	}
	for _, p := range m.Problems {
		view.Problems = append(view.Problems, p.String())
	}
	for _, p := range snap.Pods {
		if m.Enrolled(p.Namespace, p.Name) {
			view.Enrolled = append(view.Enrolled, p.Namespace+"/"+p.Name)
		}
		if n := p.Spec.NodeName; n != "" {
			view.Identities[n] = nil
		}
	}
	for node := range view.Identities {
		ids := []string{}
		for _, id := range m.IdentitiesOnNode(node) {
			ids = append(ids, id.String())
		}
		view.Identities[node] = ids
	}
	out, err := json.MarshalIndent(view, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// jsonView renders a proto as a generic JSON value, so goldens are stable and indented.
func jsonView(t *testing.T, m proto.Message) any {
	t.Helper()
	raw, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOptions(t *testing.T) {
	snap := loadFile(t, "testdata/named_ports.yaml")
	tests := []struct {
		name        string
		opts        Options
		wantUID     string
		wantSvc     string
		wantTD      string
		wantCluster string
	}{
		{"defaults", Options{}, "Kubernetes//Pod/api/api-a", "api/api.api.svc.cluster.local", "cluster.local", "Kubernetes"},
		{"custom", Options{ClusterID: "c1", TrustDomain: "example.org", DomainSuffix: "corp"}, "c1//Pod/api/api-a", "api/api.api.svc.corp", "example.org", "c1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(snap, tc.opts)
			w := m.Addresses.Get(tc.wantUID).GetWorkload()
			if w == nil {
				t.Fatalf("no workload %q in %v", tc.wantUID, keys(m))
			}
			if w.TrustDomain != tc.wantTD || w.ClusterId != tc.wantCluster || w.Uid != tc.wantUID {
				t.Errorf("workload identity = %q/%q/%q", w.TrustDomain, w.ClusterId, w.Uid)
			}
			if _, ok := w.Services[tc.wantSvc]; !ok {
				t.Errorf("workload services %v lack %q", w.Services, tc.wantSvc)
			}
			if m.Addresses.Get(tc.wantSvc).GetService() == nil {
				t.Errorf("no service %q in %v", tc.wantSvc, keys(m))
			}
			want := []spiffe.Identity{{TrustDomain: tc.wantTD, Namespace: "api", ServiceAccount: "api"}}
			if got := m.IdentitiesOnNode("node-a"); !slices.Equal(got, want) {
				t.Errorf("IdentitiesOnNode = %v, want %v", got, want)
			}
		})
	}
}

func TestEmptyAndNil(t *testing.T) {
	for _, snap := range []*kubefile.Snapshot{nil, {}} {
		m := Build(snap, Options{})
		if m.Addresses.Len() != 0 || m.Enrolled("a", "b") || len(m.IdentitiesOnNode("n")) != 0 {
			t.Errorf("Build(%v) not empty", snap)
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	snap := loadFile(t, "testdata/ambient_namespace.yaml")
	a, b := Build(snap, Options{}), Build(snap, Options{})
	if !bytes.Equal(render(t, snap, a), render(t, snap, b)) {
		t.Fatal("two builds of one snapshot differ")
	}
}

func decodeIPs(a *workloadapi.Address) []string {
	var raw [][]byte
	if w := a.GetWorkload(); w != nil {
		raw = w.Addresses
	}
	for _, na := range a.GetService().GetAddresses() {
		raw = append(raw, na.Address)
	}
	out := []string{}
	for _, b := range raw {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			out = append(out, "invalid")
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

func keys(m *Model) []string {
	out := make([]string, 0, m.Addresses.Len())
	for k := range m.Addresses.All() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestRootNamespace: Options.RootNamespace decides which namespace's policies are
// mesh-wide and where the static STRICT policy lives.
func TestRootNamespace(t *testing.T) {
	snap := loadFile(t, "testdata/policies.yaml")
	m := Build(snap, Options{RootNamespace: "bookinfo"})
	if a := m.Authorizations["bookinfo/no-untrusted"]; a.GetScope() != security.Scope_GLOBAL {
		t.Errorf("no-untrusted scope = %v, want GLOBAL", a.GetScope())
	}
	if a := m.Authorizations["istio-system/deny-quarantine"]; a.GetScope() != security.Scope_NAMESPACE {
		t.Errorf("deny-quarantine scope = %v, want NAMESPACE", a.GetScope())
	}
	if m.Authorizations["bookinfo/istio_converted_static_strict"] == nil {
		t.Errorf("no static STRICT policy in the custom root namespace: %v", slices.Sorted(maps.Keys(m.Authorizations)))
	}
	// The mesh policy now sits in an ordinary namespace without pods: nothing is STRICT.
	w := m.Addresses.Get("Kubernetes//Pod/bookinfo/productpage-0").GetWorkload()
	if want := []string{"bookinfo/productpage-http"}; !slices.Equal(w.GetAuthorizationPolicies(), want) {
		t.Errorf("productpage lists %v, want %v", w.GetAuthorizationPolicies(), want)
	}
}
