package kube

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// loadOne loads a single manifest file through the file source.
func loadOne(t *testing.T, path string) *kubefile.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := kubefile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestSourceMatchesFileSource is the F-CP-3 differential: the same manifests read from
// a directory and served by (fake) API servers give equal snapshots and models.
func TestSourceMatchesFileSource(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("../model/testdata/*.yaml") // the model's golden inputs
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no test manifests")
	}
	opts := model.Options{ClusterID: "Kubernetes", TrustDomain: "cluster.local"}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fromFile := loadOne(t, f)
			kc, ic, gc := newAllFakes(fromFile, true)
			wait := runSource(t, &Source{Client: kc, Istio: ic, Gateway: gc})
			fromKube := wait("first snapshot", func(*kubefile.Snapshot) bool { return true })

			assertSnapshotsEqual(t, fromFile, fromKube)
			assertModelsEqual(t, model.Build(fromFile, opts), model.Build(fromKube, opts), fromFile)
		})
	}
}

func TestSourceFollowsChanges(t *testing.T) {
	kc, ic := newFakes(&kubefile.Snapshot{}, true)
	wait := runSource(t, &Source{Client: kc, Istio: ic})
	wait("empty snapshot", func(s *kubefile.Snapshot) bool { return len(s.Pods) == 0 })

	ctx := t.Context()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "ns1", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "test"}}},
		Spec:       corev1.PodSpec{NodeName: "node-a"},
	}
	if _, err := kc.CoreV1().Pods("ns1").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny", Namespace: "ns1"}}
	if _, err := ic.SecurityV1().AuthorizationPolicies("ns1").Create(ctx, ap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := wait("pod and policy added", func(s *kubefile.Snapshot) bool {
		return len(s.Pods) == 1 && len(s.AuthorizationPolicies) == 1
	})
	if len(snap.Pods[0].ManagedFields) != 0 {
		t.Errorf("managed fields kept in the cache: %v", snap.Pods[0].ManagedFields)
	}
	if got, ok := (&Source{}).Pod("ns1", "p1"); ok || got != nil {
		t.Errorf("Pod on a source that never ran = %v, %v", got, ok)
	}

	pod.Spec.NodeName = "node-b"
	pod.ResourceVersion = "2"
	if _, err := kc.CoreV1().Pods("ns1").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("pod moved", func(s *kubefile.Snapshot) bool {
		return len(s.Pods) == 1 && s.Pods[0].Spec.NodeName == "node-b"
	})
	if err := kc.CoreV1().Pods("ns1").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ic.SecurityV1().AuthorizationPolicies("ns1").Delete(ctx, "deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("pod and policy deleted", func(s *kubefile.Snapshot) bool {
		return len(s.Pods) == 0 && len(s.AuthorizationPolicies) == 0
	})
}

func TestSourcePod(t *testing.T) {
	kc, _ := newFakes(&kubefile.Snapshot{Pods: []*corev1.Pod{{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-x", Namespace: "istio-system"},
		Spec:       corev1.PodSpec{NodeName: "node-a"},
	}}}, false)
	src := &Source{Client: kc}
	runSource(t, src)("synced", func(*kubefile.Snapshot) bool { return true })
	if p, ok := src.Pod("istio-system", "ztunnel-x"); !ok || p.Spec.NodeName != "node-a" {
		t.Errorf("Pod(istio-system, ztunnel-x) = %v, %v", p, ok)
	}
	if _, ok := src.Pod("istio-system", "nope"); ok {
		t.Error("Pod found an unknown pod")
	}
}

// TestSourceWithoutIstioCRDs: with the CRDs absent the source still serves the core
// kinds, and picks up policies once the CRDs appear.
func TestSourceWithoutIstioCRDs(t *testing.T) {
	snap := loadOne(t, "testdata/mesh.yaml")
	kc, ic := newFakes(snap, false)
	wait := runSource(t, &Source{Client: kc, Istio: ic, CRDCheckInterval: 10 * time.Millisecond})
	got := wait("first snapshot", func(*kubefile.Snapshot) bool { return true })
	if len(got.Pods) != len(snap.Pods) || len(got.AuthorizationPolicies) != 0 || len(got.PeerAuthentications) != 0 {
		t.Fatalf("without CRDs: %d pods, %d authz, %d peerauthn; want %d, 0, 0",
			len(got.Pods), len(got.AuthorizationPolicies), len(got.PeerAuthentications), len(snap.Pods))
	}

	kc.disc.install(resourcePeerAuthentications)
	wait("peer authentications after their CRD appears", func(s *kubefile.Snapshot) bool {
		return len(s.PeerAuthentications) == len(snap.PeerAuthentications) && len(s.AuthorizationPolicies) == 0
	})
	kc.disc.install(resourceAuthorizationPolicies, resourcePeerAuthentications)
	wait("authorization policies after their CRD appears", func(s *kubefile.Snapshot) bool {
		return len(s.AuthorizationPolicies) == len(snap.AuthorizationPolicies)
	})
}

func TestSourceRequiresClient(t *testing.T) {
	if err := (&Source{}).Run(context.Background()); err == nil {
		t.Fatal("Run without a client succeeded")
	}
}

// assertSnapshotsEqual compares the two snapshots kind by kind, ignoring what only the
// transport sets (TypeMeta, resourceVersion, managed fields).
func assertSnapshotsEqual(t *testing.T, want, got *kubefile.Snapshot) {
	t.Helper()
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := range wv.NumField() {
		name := wv.Type().Field(i).Name
		w, g := normalized(wv.Field(i)), normalized(gv.Field(i))
		if len(w) != len(g) {
			t.Errorf("%s: %d objects from files, %d from the API", name, len(w), len(g))
			continue
		}
		for j := range w {
			if !objectsEqual(w[j], g[j]) {
				t.Errorf("%s[%d] differs:\nfile: %+v\nkube: %+v", name, j, w[j], g[j])
			}
		}
	}
}

// objectsEqual compares Kubernetes objects semantically; Istio objects' specs are
// protobuf messages and are compared as such.
func objectsEqual(w, g runtime.Object) bool {
	switch w := w.(type) {
	case *securityv1.AuthorizationPolicy:
		g, ok := g.(*securityv1.AuthorizationPolicy)
		return ok && equality.Semantic.DeepEqual(w.ObjectMeta, g.ObjectMeta) && proto.Equal(&w.Spec, &g.Spec)
	case *securityv1.PeerAuthentication:
		g, ok := g.(*securityv1.PeerAuthentication)
		return ok && equality.Semantic.DeepEqual(w.ObjectMeta, g.ObjectMeta) && proto.Equal(&w.Spec, &g.Spec)
	}
	return equality.Semantic.DeepEqual(w, g)
}

// normalized deep-copies a slice of objects and clears transport-only fields.
func normalized(list reflect.Value) []runtime.Object {
	var out []runtime.Object
	for i := range list.Len() {
		o := list.Index(i).Interface().(runtime.Object).DeepCopyObject()
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		m := o.(metav1.Object)
		m.SetResourceVersion("")
		m.SetManagedFields(nil)
		out = append(out, o)
	}
	return out
}

// assertModelsEqual compares every exported field of the two models (protos with
// proto.Equal, so fields added to model.Model later are covered too) and the state
// behind its methods.
func assertModelsEqual(t *testing.T, want, got *model.Model, snap *kubefile.Snapshot) {
	t.Helper()
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := range wv.NumField() {
		f := wv.Type().Field(i)
		if f.IsExported() && !equalValue(wv.Field(i), gv.Field(i)) {
			t.Errorf("model.%s differs:\nfile: %s\nkube: %s", f.Name, describe(wv.Field(i)), describe(gv.Field(i)))
		}
	}
	var nodes []string
	for _, p := range snap.Pods {
		nodes = append(nodes, p.Spec.NodeName)
		if want.Enrolled(p.Namespace, p.Name) != got.Enrolled(p.Namespace, p.Name) {
			t.Errorf("Enrolled(%s/%s) differs", p.Namespace, p.Name)
		}
	}
	for _, n := range nodes {
		if w, g := want.IdentitiesOnNode(n), got.IdentitiesOnNode(n); !slices.Equal(w, g) {
			t.Errorf("IdentitiesOnNode(%s): file %v, kube %v", n, w, g)
		}
	}
}

var protoMessage = reflect.TypeFor[proto.Message]()

func equalValue(a, b reflect.Value) bool {
	if a.Type().Implements(protoMessage) && a.CanInterface() {
		return proto.Equal(a.Interface().(proto.Message), b.Interface().(proto.Message))
	}
	switch a.Kind() {
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !equalValue(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() && !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

func describe(v reflect.Value) string {
	if v.Kind() == reflect.Map {
		out := ""
		for it := v.MapRange(); it.Next(); {
			if m, ok := it.Value().Interface().(proto.Message); ok {
				out += it.Key().String() + ": " + prototext.Format(m) + "\n"
			}
		}
		if out != "" {
			return out
		}
	}
	return v.String()
}
