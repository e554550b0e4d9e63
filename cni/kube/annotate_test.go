package kube

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ambitmesh/ambit/pkg/wire"
)

func TestAnnotatorPatches(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(testPod("apps", "web", "u1", "node-a", nil))
	an := &Annotator{Client: client}

	getAnnotation := func() (string, bool) {
		p, err := client.CoreV1().Pods("apps").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := p.Annotations[wire.AnnotationRedirection]
		return v, ok
	}
	if err := an.SetRedirection(ctx, "apps", "web", "u1", true); err != nil {
		t.Fatal(err)
	}
	if v, ok := getAnnotation(); !ok || v != wire.RedirectionEnabled {
		t.Fatalf("annotation after enable = %q, %v", v, ok)
	}
	if err := an.SetRedirection(ctx, "apps", "web", "u1", false); err != nil {
		t.Fatal(err)
	}
	if v, ok := getAnnotation(); ok {
		t.Fatalf("annotation after disable = %q, want none", v)
	}

	var patches []k8stesting.PatchAction
	for _, a := range client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, p)
		}
	}
	want := []string{
		`{"metadata":{"annotations":{"ambient.istio.io/redirection":"enabled"},"uid":"u1"}}`,
		`{"metadata":{"annotations":{"ambient.istio.io/redirection":null},"uid":"u1"}}`,
	}
	if len(patches) != len(want) {
		t.Fatalf("patches = %v", patches)
	}
	for i, p := range patches {
		if p.GetPatchType() != types.MergePatchType || p.GetSubresource() != "status" || string(p.GetPatch()) != want[i] {
			t.Errorf("patch %d = %s %q %s, want merge patch on status %s", i, p.GetPatchType(), p.GetSubresource(), p.GetPatch(), want[i])
		}
	}
}

func TestAnnotatorMissingPod(t *testing.T) {
	ctx := context.Background()
	an := &Annotator{Client: fake.NewClientset()}
	if err := an.SetRedirection(ctx, "apps", "gone", "u9", false); err != nil {
		t.Fatalf("remove from a missing pod: %v", err)
	}
	err := an.SetRedirection(ctx, "apps", "gone", "u9", true)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("enable on a missing pod: err = %v, want NotFound", err)
	}
}

func TestAnnotatorReturnsAPIErrors(t *testing.T) {
	client := fake.NewClientset(testPod("apps", "web", "u1", "node-a", nil))
	boom := errors.New("apiserver overloaded")
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, boom
	})
	err := (&Annotator{Client: client}).SetRedirection(context.Background(), "apps", "web", "u1", false)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func TestRedirectionPatchWithoutUID(t *testing.T) {
	b, err := redirectionPatch("", true)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["metadata"]["uid"]; ok {
		t.Fatalf("patch %s names a uid", b)
	}
}
