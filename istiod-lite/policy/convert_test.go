package policy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// prelude is the mesh every conversion case runs in: two workloads in namespace shop and
// one with the same labels in namespace other.
const prelude = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web, version: v1}}
spec: {serviceAccountName: web, nodeName: n1}
status: {phase: Running, podIP: 10.244.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {serviceAccountName: db, nodeName: n1}
status: {phase: Running, podIP: 10.244.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: other, labels: {app: web}}
spec: {serviceAccountName: web, nodeName: n1}
status: {phase: Running, podIP: 10.244.1.10}
---
`

// A conversion case: policies (YAML, added to prelude), the exact set of resources
// expected (name -> prototext), the policies each pod lists (absent: none), the problems
// (substrings of Problem.String(), in order), and connection decisions under ztunnel's
// rules.
type convCase struct {
	name     string
	yaml     string
	want     map[string]string
	lists    map[string][]string
	problems []string
	checks   []check
}

// check is one connection to a pod of the prelude and whether ztunnel must allow it.
type check struct {
	pod   string // "ns/name"
	from  string // "ns/sa" of the client, "" for plaintext
	src   string // client IP, default 10.1.0.5
	port  uint16
	allow bool
}

func allow(pod, from string, port uint16) check {
	return check{pod: pod, from: from, port: port, allow: true}
}
func deny(pod, from string, port uint16) check { return check{pod: pod, from: from, port: port} }
func (c check) fromIP(ip string) check         { c.src = ip; return c }

func (c check) String() string {
	verdict := "deny"
	if c.allow {
		verdict = "allow"
	}
	return fmt.Sprintf("%s from %q@%s to %s:%d", verdict, c.from, c.src, c.pod, c.port)
}

// ap and pa render one policy document.
func ap(nsName, spec string) string { return doc("AuthorizationPolicy", nsName, "", spec) }
func pa(nsName, spec string) string { return doc("PeerAuthentication", nsName, "", spec) }
func paAt(nsName, created, spec string) string {
	return doc("PeerAuthentication", nsName, ", creationTimestamp: "+created, spec)
}

func doc(kind, nsName, meta, spec string) string {
	ns, name, _ := strings.Cut(nsName, "/")
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: %s\nmetadata: {name: %s, namespace: %s%s}\nspec: %s\n---\n",
		kind, name, ns, meta, spec)
}

const (
	static     = "istio-system/istio_converted_static_strict"
	staticText = `name:"istio_converted_static_strict" namespace:"istio-system" scope:WORKLOAD_SELECTOR action:DENY
		groups:{rules:{matches:{not_principals:{presence:{}}}}}`
)

func TestConvert(t *testing.T) {
	cases := slices.Concat(authorizationCases, invalidCases, peerAuthCases)
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := load(t, prelude+tc.yaml)
			set := Build(snap.AuthorizationPolicies, snap.PeerAuthentications, Options{})
			checkResources(t, set, tc.want)
			checkLists(t, set, snap, tc.lists)
			checkProblems(t, set.Problems, tc.problems)
			for _, c := range tc.checks {
				ns, name, _ := strings.Cut(c.pod, "/")
				pod := snap.Pod(ns, name)
				if pod == nil {
					t.Fatalf("no pod %s", c.pod)
				}
				if got := decide(set.Authorizations, pod.Namespace, set.PoliciesFor(pod.Namespace, pod.Labels), c.conn(pod.Status.PodIP)); got != c.allow {
					t.Errorf("want %v, got allow=%v", c, got)
				}
			}
		})
	}
}

func (c check) conn(podIP string) conn {
	src := c.src
	if src == "" {
		src = "10.1.0.5"
	}
	out := conn{src: netip.MustParseAddr(src), dst: netip.AddrPortFrom(netip.MustParseAddr(podIP), c.port)}
	if c.from != "" {
		ns, sa, _ := strings.Cut(c.from, "/")
		out.id = "spiffe://cluster.local/ns/" + ns + "/sa/" + sa
	}
	return out
}

func checkResources(t *testing.T, set *Set, want map[string]string) {
	t.Helper()
	for name, text := range want {
		w := &security.Authorization{}
		if err := prototext.Unmarshal([]byte(text), w); err != nil {
			t.Fatalf("bad expectation for %s: %v", name, err)
		}
		got, ok := set.Authorizations[name]
		if !ok {
			t.Errorf("missing resource %s", name)
			continue
		}
		if !proto.Equal(got, w) {
			t.Errorf("resource %s:\n got  %v\n want %v", name, prototext.Format(got), prototext.Format(w))
		}
		if ResourceName(got.Namespace, got.Name) != name {
			t.Errorf("resource %s holds %s/%s", name, got.Namespace, got.Name)
		}
	}
	for name := range set.Authorizations {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected resource %s: %v", name, prototext.Format(set.Authorizations[name]))
		}
	}
}

func checkLists(t *testing.T, set *Set, snap *kubefile.Snapshot, want map[string][]string) {
	t.Helper()
	for _, p := range snap.Pods {
		key := p.Namespace + "/" + p.Name
		if got := set.PoliciesFor(p.Namespace, p.Labels); !slices.Equal(got, want[key]) {
			t.Errorf("pod %s lists %q, want %q", key, got, want[key])
		}
	}
}

func checkProblems(t *testing.T, got []Problem, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = strings.Contains(got[i].String(), want[i])
	}
	if !ok {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}

// load reads YAML through kubefile, as istiod-lite's file source does.
func load(t testing.TB, yaml string) *kubefile.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := kubefile.Load(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return snap
}
