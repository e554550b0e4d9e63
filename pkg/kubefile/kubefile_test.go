package kubefile

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const sample = `
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    istio.io/dataplane-mode: ambient
---
# a comment-only document
---
apiVersion: v1
kind: Pod
metadata:
  name: server-0
  namespace: demo
  uid: 1111
spec:
  nodeName: node-a
  serviceAccountName: server
  containers: [{name: app, image: echo}]
status:
  podIP: 10.20.1.5
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: skipped}
`

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Namespaces) != 1 || len(snap.Pods) != 1 || len(snap.Services) != 1 {
		t.Fatalf("got %d ns, %d pods, %d svcs", len(snap.Namespaces), len(snap.Pods), len(snap.Services))
	}
	p := snap.Pod("demo", "server-0")
	if p == nil || p.Status.PodIP != "10.20.1.5" || p.Spec.NodeName != "node-a" || string(p.UID) != "1111" {
		t.Fatalf("pod = %+v", p)
	}
	if snap.Namespace("demo").Labels["istio.io/dataplane-mode"] != "ambient" {
		t.Fatal("namespace label lost")
	}
}

func TestLoadRejectsBrokenFile(t *testing.T) {
	dir := t.TempDir()
	bad := "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {bogusField: 1}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	got := make(chan *Snapshot, 10)
	w := &Watcher{Dir: dir, OnChange: func(s *Snapshot) { got <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if s := <-got; len(s.Pods) != 0 {
		t.Fatalf("initial snapshot has %d pods", len(s.Pods))
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-got:
			if len(s.Pods) == 1 {
				return
			}
		case <-deadline:
			t.Fatal("no reload after write")
		}
	}
}
