package kube

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
)

func testPod(ns, name, uid, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

func testNamespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// recorder keeps the snapshots a Source delivers.
type recorder struct {
	mu    sync.Mutex
	snaps []*kubefile.Snapshot
}

func (r *recorder) onChange(s *kubefile.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
}

func (r *recorder) latest() *kubefile.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil
	}
	return r.snaps[len(r.snaps)-1]
}

// runSource runs a Source on client until the test ends and checks that Run returns nil.
func runSource(t *testing.T, client kubernetes.Interface) *recorder {
	t.Helper()
	rec := &recorder{}
	src := &Source{Client: client, NodeName: "node-a", Debounce: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.onChange) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source run: %v", err)
		}
	})
	return rec
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func podNames(s *kubefile.Snapshot) []string {
	var out []string
	for _, p := range s.Pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func TestSourceDeliversNodePodsAndNamespaces(t *testing.T) {
	client := fake.NewClientset(
		testNamespace("apps", nil), testNamespace("other", nil),
		testPod("apps", "web", "u1", "node-a", nil),
		testPod("apps", "remote", "u2", "node-b", nil),
	)
	rec := runSource(t, client)
	eventually(t, "first snapshot", func() bool { return rec.latest() != nil })
	s := rec.latest()
	if got := podNames(s); !slices.Equal(got, []string{"apps/web"}) {
		t.Fatalf("pods = %v, want only this node's", got)
	}
	if s.Namespace("apps") == nil || s.Namespace("other") == nil {
		t.Fatalf("namespaces = %v", s.Namespaces)
	}
}

func TestSourceFollowsLiveChanges(t *testing.T) {
	ctx := context.Background()
	ambient := map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeAmbient}
	client := fake.NewClientset(testNamespace("apps", nil), testPod("apps", "web", "u1", "node-a", nil))
	rec := runSource(t, client)
	eventually(t, "first snapshot", func() bool { return rec.latest() != nil })

	steps := []struct {
		name   string
		change func() error
		want   func(*kubefile.Snapshot) bool
	}{
		{"namespace labelled ambient", func() error {
			_, err := client.CoreV1().Namespaces().Update(ctx, testNamespace("apps", ambient), metav1.UpdateOptions{})
			return err
		}, func(s *kubefile.Snapshot) bool {
			return s.Namespace("apps").Labels[wire.LabelDataplaneMode] == wire.DataplaneModeAmbient
		}},
		{"pod opts out", func() error {
			_, err := client.CoreV1().Pods("apps").Update(ctx, testPod("apps", "web", "u1", "node-a",
				map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeNone}), metav1.UpdateOptions{})
			return err
		}, func(s *kubefile.Snapshot) bool {
			p := s.Pod("apps", "web")
			return p != nil && p.Labels[wire.LabelDataplaneMode] == wire.DataplaneModeNone
		}},
		{"other node's pod ignored, new local pod seen", func() error {
			if _, err := client.CoreV1().Pods("apps").Create(ctx, testPod("apps", "far", "u3", "node-b", nil), metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := client.CoreV1().Pods("apps").Create(ctx, testPod("apps", "near", "u4", "node-a", nil), metav1.CreateOptions{})
			return err
		}, func(s *kubefile.Snapshot) bool {
			return slices.Equal(podNames(s), []string{"apps/near", "apps/web"})
		}},
		{"namespace label removed", func() error {
			_, err := client.CoreV1().Namespaces().Update(ctx, testNamespace("apps", nil), metav1.UpdateOptions{})
			return err
		}, func(s *kubefile.Snapshot) bool {
			return s.Namespace("apps") != nil && s.Namespace("apps").Labels[wire.LabelDataplaneMode] == ""
		}},
		{"pod deleted", func() error {
			return client.CoreV1().Pods("apps").Delete(ctx, "web", metav1.DeleteOptions{})
		}, func(s *kubefile.Snapshot) bool {
			return slices.Equal(podNames(s), []string{"apps/near"})
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.change(); err != nil {
				t.Fatal(err)
			}
			eventually(t, st.name, func() bool { return st.want(rec.latest()) })
			for _, p := range rec.latest().Pods {
				if p.Spec.NodeName != "node-a" {
					t.Fatalf("snapshot holds %s/%s of node %s", p.Namespace, p.Name, p.Spec.NodeName)
				}
			}
		})
	}
}

func TestSourceStripsManagedFields(t *testing.T) {
	p := testPod("apps", "web", "u1", "node-a", nil)
	p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	rec := runSource(t, fake.NewClientset(testNamespace("apps", nil), p))
	eventually(t, "first snapshot", func() bool { return rec.latest() != nil })
	if got := rec.latest().Pod("apps", "web"); got == nil || got.ManagedFields != nil {
		t.Fatalf("pod = %+v, want managedFields stripped", got)
	}
}

func TestSourceRejectsMissingConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
	}{
		{"no client", Source{NodeName: "n"}},
		{"no node", Source{Client: fake.NewClientset()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.src.Run(context.Background(), func(*kubefile.Snapshot) {}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
