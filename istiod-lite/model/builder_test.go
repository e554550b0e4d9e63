package model

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// churn mutates a snapshot the way the config sources present changes: every changed
// object is a new pointer, unchanged objects keep theirs.
type churn struct {
	r    *rand.Rand
	snap *kubefile.Snapshot
	next int
}

var churnNamespaces = []string{"a", "b", "c"}

func newChurn(seed uint64) *churn {
	c := &churn{r: rand.New(rand.NewPCG(seed, 1)), snap: &kubefile.Snapshot{}}
	for _, ns := range churnNamespaces {
		c.snap.Namespaces = append(c.snap.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}})
		c.snap.Services = append(c.snap.Services, c.service(ns, "web", "web"))
	}
	for range 12 {
		c.snap.Pods = append(c.snap.Pods, c.pod())
	}
	return c
}

func (c *churn) pick(list []string) string { return list[c.r.IntN(len(list))] }

func (c *churn) pod() *corev1.Pod {
	c.next++
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", c.next), Namespace: c.pick(churnNamespaces),
			Labels: map[string]string{"app": c.pick([]string{"web", "db", "cache"}), "zone": c.pick([]string{"z1", "z2"})}},
		Spec: corev1.PodSpec{NodeName: c.pick([]string{"n1", "n2"}), ServiceAccountName: c.pick([]string{"", "sa1", "sa2"}),
			Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.%d.%d", c.next/200, c.next%200+1)},
	}
}

func (c *churn) service(ns, name, app string) *corev1.Service {
	c.next++
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", c.next/200, c.next%200+1),
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}
}

func (c *churn) policy(ns, name, app string) *securityv1.AuthorizationPolicy {
	return &securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: securityv1beta1.AuthorizationPolicy{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": app}},
			Rules:    []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{ns}}}}}},
		},
	}
}

// step applies one random change and names it.
func (c *churn) step() string {
	s := c.snap
	if len(s.Pods) < 4 {
		s.Pods = append(s.Pods, c.pod())
		return "add pod"
	}
	i := c.r.IntN(len(s.Pods))
	switch c.r.IntN(11) {
	case 0:
		p := s.Pods[i].DeepCopy()
		p.Labels["app"] = c.pick([]string{"web", "db", "cache"})
		s.Pods[i] = p
		return "relabel pod"
	case 1:
		p := s.Pods[i].DeepCopy()
		p.Status.PodIP = fmt.Sprintf("10.1.0.%d", c.r.IntN(250)+1)
		s.Pods[i] = p
		return "new pod IP"
	case 2:
		s.Pods = append(s.Pods, c.pod())
		return "add pod"
	case 3:
		s.Pods = slices.Delete(s.Pods, i, i+1)
		return "delete pod"
	case 4:
		p := s.Pods[i].DeepCopy()
		p.Status.Phase = corev1.PodSucceeded
		s.Pods[i] = p
		return "pod succeeded"
	case 5:
		j := c.r.IntN(len(s.Services))
		old := s.Services[j]
		s.Services[j] = c.service(old.Namespace, old.Name, c.pick([]string{"web", "db"}))
		return "service selector and IP"
	case 6:
		j := c.r.IntN(len(s.Namespaces))
		ns := s.Namespaces[j].DeepCopy()
		if ns.Labels["istio.io/dataplane-mode"] == "ambient" {
			delete(ns.Labels, "istio.io/dataplane-mode")
		} else {
			ns.Labels["istio.io/dataplane-mode"] = "ambient"
		}
		s.Namespaces[j] = ns
		return "toggle namespace"
	case 7:
		if len(s.AuthorizationPolicies) > 0 && c.r.IntN(2) == 0 {
			s.AuthorizationPolicies = s.AuthorizationPolicies[1:]
			return "remove policy"
		}
		s.AuthorizationPolicies = append(s.AuthorizationPolicies, c.policy(c.pick(churnNamespaces), fmt.Sprintf("ap%d", c.next), c.pick([]string{"web", "db"})))
		c.next++
		return "add policy"
	case 8:
		ns := c.pick(churnNamespaces)
		name := "wp-" + ns
		for k, gw := range s.Gateways {
			if gw.Namespace == ns {
				s.Gateways = slices.Delete(s.Gateways, k, k+1)
				s.Services = slices.DeleteFunc(s.Services, func(svc *corev1.Service) bool { return svc.Namespace == ns && svc.Name == name })
				return "remove waypoint"
			}
		}
		gw := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"istio.io/waypoint-for": c.pick([]string{"service", "all", "workload"})}},
			Spec: gatewayv1.GatewaySpec{GatewayClassName: "istio-waypoint"}}
		s.Gateways = append(s.Gateways, gw)
		s.Services = append(s.Services, c.service(ns, name, "waypoint"))
		return "add waypoint"
	case 9:
		j := c.r.IntN(len(s.Namespaces))
		ns := s.Namespaces[j].DeepCopy()
		if _, ok := ns.Labels["istio.io/use-waypoint"]; ok {
			delete(ns.Labels, "istio.io/use-waypoint")
		} else {
			ns.Labels["istio.io/use-waypoint"] = "wp-" + ns.Name
		}
		s.Namespaces[j] = ns
		return "toggle namespace waypoint"
	default:
		svc := c.service(c.pick(churnNamespaces), fmt.Sprintf("s%d", c.next), c.pick([]string{"db", "cache"}))
		if c.r.IntN(2) == 0 {
			svc.Spec.Selector["zone"] = "z1" // two-label selector
		}
		s.Services = append(s.Services, svc)
		return "add service"
	}
}

// TestBuilderMatchesBuild drives a Builder through random changes and checks that each
// incremental model equals a full Build of the same snapshot.
func TestBuilderMatchesBuild(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newChurn(seed)
			b := NewBuilder(Options{})
			var prev *Model
			fast := 0
			for i := range 150 {
				what := "initial"
				if i > 0 {
					what = c.step()
				}
				c.snap.Sort()
				got := b.Build(c.snap)
				if err := sameModel(got, Build(c.snap, Options{}), c.snap); err != nil {
					t.Fatalf("step %d (%s): incremental model differs from a full build: %v", i, what, err)
				}
				if names, ok := got.ChangedSince(prev); ok {
					fast++
					if err := changedCovers(prev, got, names); err != nil {
						t.Fatalf("step %d (%s): %v", i, what, err)
					}
				}
				prev = got
			}
			if fast == 0 {
				t.Error("no step took the pods-only fast path")
			}
		})
	}
}

// TestBuilderReusesUnchanged checks the point of the Builder: after one pod changes,
// every other resource is the very same pointer as before (so the xDS diff skips it),
// and the changed pod's is new.
func TestBuilderReusesUnchanged(t *testing.T) {
	c := newChurn(42)
	b := NewBuilder(Options{})
	before := b.Build(c.snap)
	p := c.snap.Pods[3].DeepCopy()
	p.Status.PodIP = "10.9.9.9"
	c.snap.Pods[3] = p
	after := b.Build(c.snap)
	changedUID := WorkloadUID("Kubernetes", p.Namespace, p.Name)
	for name, a := range after.Addresses.All() {
		if same := before.Addresses.Get(name) == a; same == (name == changedUID) {
			t.Errorf("%s: reused=%v, want reuse only for unchanged resources", name, same)
		}
	}
}

// changedCovers checks ChangedSince's promise: every Address that differs between prev
// and m (added, removed or another object) is named, and Authorizations are the same.
func changedCovers(prev, m *Model, names []string) error {
	for name, a := range m.Addresses.All() {
		if prev.Addresses.Get(name) != a && !slices.Contains(names, name) {
			return fmt.Errorf("address %s changed but is not reported", name)
		}
	}
	for name := range prev.Addresses.All() {
		if _, ok := m.Addresses.Lookup(name); !ok && !slices.Contains(names, name) {
			return fmt.Errorf("address %s removed but is not reported", name)
		}
	}
	if len(prev.Authorizations) != len(m.Authorizations) {
		return fmt.Errorf("authorizations changed on the fast path")
	}
	return nil
}

func sameModel(got, want *Model, snap *kubefile.Snapshot) error {
	if g, w := keys(got), keys(want); !slices.Equal(g, w) {
		return fmt.Errorf("addresses %v, want %v", g, w)
	}
	for name, w := range want.Addresses.All() {
		if !proto.Equal(got.Addresses.Get(name), w) {
			return fmt.Errorf("address %s: %v, want %v", name, got.Addresses.Get(name), w)
		}
	}
	if len(got.Authorizations) != len(want.Authorizations) {
		return fmt.Errorf("%d authorizations, want %d", len(got.Authorizations), len(want.Authorizations))
	}
	for name, w := range want.Authorizations {
		if !proto.Equal(got.Authorizations[name], w) {
			return fmt.Errorf("authorization %s differs", name)
		}
	}
	if !reflect.DeepEqual(got.Problems, want.Problems) {
		return fmt.Errorf("problems %v, want %v", got.Problems, want.Problems)
	}
	for _, node := range []string{"n1", "n2"} {
		if g, w := got.IdentitiesOnNode(node), want.IdentitiesOnNode(node); !slices.Equal(g, w) {
			return fmt.Errorf("identities on %s: %v, want %v", node, g, w)
		}
	}
	for _, p := range snap.Pods {
		if got.Enrolled(p.Namespace, p.Name) != want.Enrolled(p.Namespace, p.Name) {
			return fmt.Errorf("enrolled(%s/%s) differs", p.Namespace, p.Name)
		}
	}
	return nil
}

// TestBuilderFastPathShiftedPods: a pod deleted and another added in one snapshot keep
// the count, so the pods-only path runs with every later position shifted; the model
// must still equal a full build and report every changed name.
func TestBuilderFastPathShiftedPods(t *testing.T) {
	c := newChurn(9)
	c.snap.Sort()
	b := NewBuilder(Options{})
	prev := b.Build(c.snap)
	c.snap.Pods = slices.Delete(slices.Clone(c.snap.Pods), 2, 3)
	c.snap.Pods = append(c.snap.Pods, c.pod())
	c.snap.Sort()
	got := b.Build(c.snap)
	if err := sameModel(got, Build(c.snap, Options{}), c.snap); err != nil {
		t.Fatal(err)
	}
	names, ok := got.ChangedSince(prev)
	if !ok {
		t.Fatal("same pod count and nothing else changed, but the fast path was not taken")
	}
	if err := changedCovers(prev, got, names); err != nil {
		t.Fatal(err)
	}
}
