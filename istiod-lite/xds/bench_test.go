package xds

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// scaleSnapshot is F-CP-4's load: pods pods and services services spread over 10
// ambient namespaces and 20 nodes, pod i selected by service i%services.
func scaleSnapshot(pods, services int) *kubefile.Snapshot {
	s := &kubefile.Snapshot{}
	for n := range 10 {
		s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("ns-%d", n), Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}})
	}
	for i := range services {
		s.Services = append(s.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: fmt.Sprintf("ns-%d", i%10)},
			Spec: corev1.ServiceSpec{
				ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
				Selector:  map[string]string{"app": fmt.Sprintf("svc-%d", i)},
				Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		})
	}
	for i := range pods {
		s.Pods = append(s.Pods, scalePod(i, services, fmt.Sprintf("10.%d.%d.%d", 20+i/65000, i/250%250, i%250+1)))
	}
	s.Sort()
	return s
}

func scalePod(i, services int, ip string) *corev1.Pod {
	svc := i % services
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("pod-%d", i), Namespace: fmt.Sprintf("ns-%d", svc%10), UID: k8stypes.UID(fmt.Sprintf("uid-%d", i)),
			Labels: map[string]string{"app": fmt.Sprintf("svc-%d", svc)},
		},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%20), ServiceAccountName: fmt.Sprintf("sa-%d", svc)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// BenchmarkModelBuild is a full model build at 10,000 pods and 1,000 services: what
// istiod-lite does for its first snapshot (later ones are incremental).
func BenchmarkModelBuild(b *testing.B) {
	snap := scaleSnapshot(10000, 1000)
	b.ReportAllocs()
	for b.Loop() {
		model.Build(snap, model.Options{})
	}
}

// BenchmarkUpdateOnePodChange is the WDS diff path for one pod changing its IP at
// 10,000 pods and 1,000 services, as istiod-lite runs it: an incremental rebuild
// (model.Builder), the diff against the served state, and the cache update. It reports
// the resources pushed per change (one: the pod's workload).
func BenchmarkUpdateOnePodChange(b *testing.B) {
	snap := scaleSnapshot(10000, 1000)
	s := New(nil)
	builder := model.NewBuilder(model.Options{})
	s.Update(builder.Build(snap))
	orig := snap.Pods[0]
	changed := scalePod(0, 1000, "10.99.0.1")
	changed.Namespace, changed.Name = orig.Namespace, orig.Name
	pushed, changes := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		if changes%2 == 0 {
			snap.Pods[0] = changed
		} else {
			snap.Pods[0] = orig
		}
		changes++
		pushed += s.Update(builder.Build(snap))
	}
	b.ReportMetric(float64(pushed)/float64(changes), "resources/change")
}

// TestUpdateCountsChangedResources checks what the benchmark reports: one changed pod
// is one changed resource, an unchanged model none.
func TestUpdateCountsChangedResources(t *testing.T) {
	snap := scaleSnapshot(20, 5)
	s := New(nil)
	if n := s.Update(model.Build(snap, model.Options{})); n != 25 {
		t.Fatalf("first update changed %d resources, want 25 (20 workloads + 5 services)", n)
	}
	if n := s.Update(model.Build(snap, model.Options{})); n != 0 {
		t.Fatalf("same model changed %d resources", n)
	}
	p := scalePod(0, 5, "10.99.0.1")
	p.Namespace, p.Name = snap.Pods[0].Namespace, snap.Pods[0].Name
	snap.Pods[0] = p
	if n := s.Update(model.Build(snap, model.Options{})); n != 1 {
		t.Fatalf("one pod's new IP changed %d resources, want 1", n)
	}
}

// BenchmarkCachePushOneChange100Subscribers is the delta cache's share of a push at
// 11,000 resources: one resource changes and each of 100 up-to-date wildcard
// subscribers gets its response and opens its next watch, as the go-control-plane
// server does after sending.
func BenchmarkCachePushOneChange100Subscribers(b *testing.B) {
	snap := scaleSnapshot(10000, 1000)
	m := model.Build(snap, model.Options{})
	c := newDeltaCache(TypeAddress)
	all := map[string]types.Resource{}
	for name, a := range m.Addresses.All() {
		all[name] = a
	}
	if err := c.UpdateResources(all, nil); err != nil {
		b.Fatal(err)
	}
	subs := make([]*stream.Subscription, 100)
	chans := make([]chan cachev3.DeltaResponse, 100)
	watch := func(i int, nonce string) {
		if _, err := c.CreateDeltaWatch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: TypeAddress, ResponseNonce: nonce}, subs[i], chans[i]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range subs {
		s := stream.NewDeltaSubscription(nil, nil, nil, true)
		subs[i], chans[i] = &s, make(chan cachev3.DeltaResponse, 1)
		watch(i, "")
		subs[i].SetReturnedResources((<-chans[i]).GetReturnedResources())
		watch(i, "1")
	}
	name := model.WorkloadUID("Kubernetes", "ns-0", "pod-0")
	w := proto.Clone(m.Addresses.Get(name)).(*workloadapi.Address)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.GetWorkload().CanonicalRevision = fmt.Sprint(i)
		if err := c.UpdateResources(map[string]types.Resource{name: proto.Clone(w)}, nil); err != nil {
			b.Fatal(err)
		}
		for j := range subs {
			r := <-chans[j]
			if out, _ := r.GetDeltaDiscoveryResponse(); len(out.GetResources()) != 1 {
				b.Fatalf("subscriber %d got %d resources, want 1", j, len(out.GetResources()))
			}
			subs[j].SetReturnedResources(r.GetReturnedResources())
			watch(j, "n")
		}
	}
}
