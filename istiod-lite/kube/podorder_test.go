package kube

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestPodOrderKeepsSnapshotOrder: pods added in any order list sorted by namespace then
// name (the order kubefile.Snapshot promises, even where "ns/name" strings would sort
// differently: "a-b" before "a" by bytes, after it by namespace), deletes (also as
// DeletedFinalStateUnknown) drop them, and pods missing from the cache are skipped.
func TestPodOrderKeepsSnapshotOrder(t *testing.T) {
	o := &podOrder{}
	h := o.handler()
	pod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	for _, p := range []*corev1.Pod{pod("a-b", "x"), pod("a", "z"), pod("a", "y"), pod("b", "w"), pod("a", "gone")} {
		h.OnAdd(p, false)
	}
	h.OnAdd(pod("a", "y"), false) // duplicate add is one entry
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "a/gone", Obj: pod("a", "gone")})
	cached := map[string]*corev1.Pod{}
	for _, p := range []*corev1.Pod{pod("a-b", "x"), pod("a", "z"), pod("a", "y")} {
		cached[p.Namespace+"/"+p.Name] = p // b/w not in the cache yet
	}
	got := o.list(func(ns, name string) (*corev1.Pod, error) {
		if p, ok := cached[ns+"/"+name]; ok {
			return p, nil
		}
		return nil, errors.New("not found")
	})
	var names []string
	for _, p := range got {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	want := []string{"a/y", "a/z", "a-b/x"}
	if len(names) != len(want) || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Fatalf("listed %v, want %v", names, want)
	}
}

// TestPodOrderPatchesUpdates: with no pod added or deleted, a list after updates is the
// previous one with just the updated pods replaced; an add goes back to a full listing.
func TestPodOrderPatchesUpdates(t *testing.T) {
	o := &podOrder{}
	h := o.handler()
	cached := map[string]*corev1.Pod{}
	put := func(ns, name, rv string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: rv}}
		cached[ns+"/"+name] = p
		return p
	}
	get := func(ns, name string) (*corev1.Pod, error) {
		if p, ok := cached[ns+"/"+name]; ok {
			return p, nil
		}
		return nil, errors.New("not found")
	}
	for _, n := range []string{"c", "a", "b"} {
		h.OnAdd(put("ns", n, "1"), false)
	}
	first := o.list(get)
	old := cached["ns/b"]
	h.OnUpdate(old, put("ns", "b", "2"))
	second := o.list(get)
	if second[0] != first[0] || second[2] != first[2] || second[1] == first[1] || second[1].ResourceVersion != "2" {
		t.Fatalf("after one update: %v, want only ns/b replaced", second)
	}
	h.OnAdd(put("ns", "aa", "1"), false)
	third := o.list(get)
	if len(third) != 4 || third[1].Name != "aa" {
		t.Fatalf("after an add: %d pods, second %s; want 4 with aa second", len(third), third[1].Name)
	}
}
