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
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: server-abc, namespace: demo}
addressType: IPv4
endpoints: [{addresses: [10.20.1.5]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: demo}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
    to: [{operation: {ports: ["8080"]}}]
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: STRICT}
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
	if len(snap.Nodes) != 1 || len(snap.EndpointSlices) != 1 || snap.EndpointSlices[0].Endpoints[0].Addresses[0] != "10.20.1.5" {
		t.Fatalf("nodes %v, slices %v", snap.Nodes, snap.EndpointSlices)
	}
	if len(snap.AuthorizationPolicies) != 1 {
		t.Fatalf("got %d authorization policies", len(snap.AuthorizationPolicies))
	}
	ap := snap.AuthorizationPolicies[0]
	if got := ap.Spec.GetRules()[0].GetFrom()[0].GetSource().GetPrincipals(); len(got) != 1 || got[0] != "cluster.local/ns/demo/sa/client" {
		t.Fatalf("principals = %v", got)
	}
	if len(snap.PeerAuthentications) != 1 || snap.PeerAuthentications[0].Namespace != "default" ||
		snap.PeerAuthentications[0].Spec.GetMtls().GetMode().String() != "STRICT" {
		t.Fatalf("peer authentications = %v", snap.PeerAuthentications)
	}
}

func TestLoadRejectsBrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec: {action: MAYBE}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("unknown action accepted")
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
