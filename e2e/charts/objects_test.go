package charts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const workloads = `
# Source: x/templates/a.yaml
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      initContainers: [{name: init, image: i}]
      containers:
      - name: main
        image: m
        args: ["--port=15021"]
        ports: [{name: p, containerPort: 15021}]
---
---
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cp"},
 "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
`

func TestDecodeAndContainer(t *testing.T) {
	objs, err := Decode(strings.NewReader(workloads))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("decoded %d objects, want 3", len(objs))
	}
	tests := []struct {
		name, kind, obj, container string
		wantErr                    error
	}{
		{"daemonset container", "DaemonSet", "agent", "main", nil},
		{"init container", "DaemonSet", "agent", "init", nil},
		{"deployment from json", "Deployment", "cp", "c", nil},
		{"missing container", "DaemonSet", "agent", "nope", ErrNotFound},
		{"missing object", "DaemonSet", "nope", "main", ErrNotFound},
		{"kind mismatch", "Deployment", "agent", "main", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Container(objs, tc.kind, tc.obj, tc.container)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != tc.container {
				t.Fatalf("got container %q", c.Name)
			}
		})
	}
	c, _ := Container(objs, "DaemonSet", "agent", "main")
	if c.Ports[0].ContainerPort != 15021 || c.Args[0] != "--port=15021" {
		t.Errorf("container decoded as %+v", c)
	}
	if _, err := PodSpec(objs, "Service", "svc"); err == nil {
		t.Error("PodSpec of a Service succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n"},
		{"not an object", "- a\n- b\n"},
		{"bad yaml", "a: [\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if objs, err := Decode(strings.NewReader(tc.in)); err == nil {
				t.Fatalf("Decode(%q) = %v, want an error", tc.in, objs)
			}
		})
	}
}

func TestPodSpecRejectsUnknownFields(t *testing.T) {
	objs, err := Decode(strings.NewReader(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: cp}
spec: {template: {spec: {containers: [{name: c, imagee: x}]}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PodSpec(objs, "Deployment", "cp"); err == nil || !strings.Contains(err.Error(), "imagee") {
		t.Fatalf("PodSpec err = %v, want an unknown field error naming imagee", err)
	}
}

func TestCRDs(t *testing.T) {
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: %s}\n"
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "crds"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "crds", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("none", func(t *testing.T) {
		if _, err := CRDs(t.TempDir()); !errors.Is(err, ErrNoCRDs) {
			t.Fatalf("err = %v, want ErrNoCRDs", err)
		}
	})
	t.Run("two", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "b.yaml", "# header\n"+strings.Replace(crd, "%s", "b.example.com", 1))
		write(t, dir, "a.yaml", strings.Replace(crd, "%s", "a.example.com", 1))
		write(t, dir, "notes.txt", "ignored")
		got, err := CRDs(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].GetName() != "a.example.com" || got[1].GetName() != "b.example.com" {
			t.Fatalf("CRDs = %v", got)
		}
	})
	t.Run("other kind", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
		if _, err := CRDs(dir); err == nil {
			t.Fatal("CRDs accepted a ConfigMap")
		}
	})
}
