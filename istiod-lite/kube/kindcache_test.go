package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// TestKindListRelistsOnlyAfterEvents: the kept list is reused until an event of the
// kind arrives, then listed again, sorted, and the event passed on.
func TestKindListRelistsOnlyAfterEvents(t *testing.T) {
	store := []*corev1.Service{svcObj("b", "x"), svcObj("a", "y")}
	lists := 0
	k := newKindList(func(labels.Selector) ([]*corev1.Service, error) {
		lists++
		return append([]*corev1.Service(nil), store...), nil
	}, func(o *corev1.Service) *metav1.ObjectMeta { return &o.ObjectMeta })
	kicks := 0
	h := k.handler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kicks++ },
		UpdateFunc: func(any, any) { kicks++ },
		DeleteFunc: func(any) { kicks++ },
	})

	first, _ := k.get()
	if lists != 1 || len(first) != 2 || first[0].Namespace != "a" {
		t.Fatalf("first get: %d lists, %v", lists, names(first))
	}
	again, _ := k.get()
	if lists != 1 || &again[0] != &first[0] {
		t.Fatalf("get without events listed again (%d lists)", lists)
	}
	if cap(again) != len(again) {
		t.Fatalf("kept list not clipped: len %d cap %d", len(again), cap(again))
	}

	added := svcObj("c", "z")
	store = append(store, added)
	h.OnAdd(added, false)
	got, _ := k.get()
	if lists != 2 || kicks != 1 || len(got) != 3 || got[2] != added {
		t.Fatalf("after add: %d lists, %d kicks, %v", lists, kicks, names(got))
	}
	store = store[:2]
	h.OnDelete(added)
	h.OnUpdate(store[0], store[0])
	got, _ = k.get()
	if lists != 3 || kicks != 3 || len(got) != 2 {
		t.Fatalf("after delete and update: %d lists, %d kicks, %v", lists, kicks, names(got))
	}
}

func svcObj(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func names(l []*corev1.Service) []string {
	var out []string
	for _, s := range l {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	return out
}
