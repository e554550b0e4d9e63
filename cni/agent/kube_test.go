package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
	"github.com/ambitmesh/ambit/cni/kube"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
)

func kubeNamespace(ambient bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}
	if ambient {
		ns.Labels = map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeAmbient}
	}
	return ns
}

func kubePod(name, uid, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID(uid)},
		Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: "sa-" + name, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

// kubeMode switches the agent to Kubernetes mode over client.
func kubeMode(client *fake.Clientset) func(*Config) {
	return func(c *Config) {
		c.ConfigDir = ""
		c.Source = &kube.Source{Client: client, NodeName: "node-a", Debounce: 5 * time.Millisecond}
		c.Annotator = &kube.Annotator{Client: client}
		c.AnnotateInterval = 10 * time.Millisecond
	}
}

// annotation reads the pod's redirection annotation from the fake API server.
func annotation(t *testing.T, client *fake.Clientset, name string) string {
	t.Helper()
	p, err := client.CoreV1().Pods("apps").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Annotations[wire.AnnotationRedirection]
}

func TestKubeModeLiveEnrolmentAndAnnotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	client := fake.NewClientset(kubeNamespace(true), kubePod("web", "u1", "node-a"), kubePod("far", "u9", "node-b"))
	a, _ := e.startAgent(kubeMode(client))
	z := newFakeZtunnel(e.j)
	e.startZtunnel(z)
	eventually(t, a.zds.Connected, "ztunnel connected")

	if err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5")); err != nil {
		t.Fatal(err)
	}
	if !e.redir.has("u1") || z.info("u1").GetServiceAccount() != "sa-web" {
		t.Fatalf("not enrolled with the informer's identity: %v", z.info("u1"))
	}
	eventually(t, func() bool { return annotation(t, client, "web") == wire.RedirectionEnabled }, "annotation set after ack")

	steps := []struct {
		name     string
		ambient  bool
		enrolled bool
		value    string
	}{
		{"namespace unlabelled", false, false, ""},
		{"namespace labelled again", true, true, wire.RedirectionEnabled},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := client.CoreV1().Namespaces().Update(ctx, kubeNamespace(st.ambient), metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, func() bool {
				return e.redir.has("u1") == st.enrolled && (z.info("u1") != nil) == st.enrolled &&
					annotation(t, client, "web") == st.value
			}, st.name)
		})
	}

	if err := e.client().Del(ctxT(t), podapi.DelRequest{UID: "u1", ContainerID: "sandbox-u1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return annotation(t, client, "web") == "" }, "annotation removed after DEL")
	for _, act := range client.Actions() {
		if p, ok := act.(k8stesting.PatchAction); ok && p.GetName() != "web" {
			t.Errorf("patched pod %s, not ours", p.GetName())
		}
	}
}

func TestKubeModeZtunnelDownPodStartsAnnotatedAfterAck(t *testing.T) {
	e := newEnv(t)
	client := fake.NewClientset(kubeNamespace(true), kubePod("web", "u1", "node-a"))
	var agentp atomic.Pointer[Agent]
	var patchedUnacked atomic.Bool
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if a := agentp.Load(); a == nil || !a.zds.Acked("u1") {
			patchedUnacked.Store(true)
		}
		return false, nil, nil
	})
	a, _ := e.startAgent(kubeMode(client))
	agentp.Store(a)

	start := time.Now()
	if err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5")); err != nil {
		t.Fatalf("add without ztunnel: %v", err)
	}
	if time.Since(start) > 4*time.Second || !e.redir.has("u1") {
		t.Fatal("pod start waited on ztunnel, or is not redirected")
	}
	z := newFakeZtunnel(e.j)
	e.startZtunnel(z)
	eventually(t, func() bool { return annotation(t, client, "web") == wire.RedirectionEnabled }, "annotation after ztunnel acked the replay")
	if patchedUnacked.Load() {
		t.Fatal("annotated before ztunnel acknowledged")
	}
}

func TestKubeModeAddWaitsForInformer(t *testing.T) {
	e := newEnv(t)
	client := fake.NewClientset(kubeNamespace(true))
	a, _ := e.startAgent(kubeMode(client))
	eventually(t, func() bool { return a.snapshot() != nil }, "first snapshot")
	req := e.newPod("u1", "apps", "web", "10.20.1.5")
	done := make(chan error, 1)
	go func() { done <- e.client().Add(ctxT(t), req) }()
	if _, err := client.CoreV1().Pods("apps").Create(context.Background(), kubePod("web", "u1", "node-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !e.redir.has("u1") {
		t.Fatal("pod added before the informer saw it was not enrolled")
	}
}

func TestKubeModeAnnotationFailureRetried(t *testing.T) {
	e := newEnv(t)
	client := fake.NewClientset(kubeNamespace(true), kubePod("web", "u1", "node-a"))
	var failures atomic.Int32
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures.Add(1) <= 3 {
			return true, nil, errors.New("apiserver unavailable")
		}
		return false, nil, nil
	})
	a, _ := e.startAgent(kubeMode(client))
	e.startZtunnel(newFakeZtunnel(e.j))
	eventually(t, a.zds.Connected, "ztunnel connected")
	start := time.Now()
	if err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5")); err != nil {
		t.Fatalf("add with a failing API server: %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("pod add waited on the annotation")
	}
	eventually(t, func() bool { return annotation(t, client, "web") == wire.RedirectionEnabled }, "annotation after retries")
	if failures.Load() < 4 {
		t.Fatalf("patches = %d, want 3 failures then success", failures.Load())
	}
}

func TestZtunnelDownPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  ZtunnelDownPolicy
		ztunnel string // "none" or "silent"
		wantErr bool
	}{
		{"open, no ztunnel", ZtunnelDownOpen, "none", false},
		{"open, silent ztunnel", ZtunnelDownOpen, "silent", false},
		{"closed, no ztunnel", ZtunnelDownClosed, "none", true},
		{"closed, silent ztunnel", ZtunnelDownClosed, "silent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig(nsAmbient + podYAML("web", "u1", "", ""))
			a, _ := e.startAgent(func(c *Config) {
				c.ZtunnelDown = tc.policy
				c.HandoffTimeout = 100 * time.Millisecond
			})
			z := newFakeZtunnel(e.j)
			if tc.ztunnel == "silent" {
				z.gate = make(chan struct{})
				e.startZtunnel(z)
				t.Cleanup(func() { close(z.gate) })
				eventually(t, a.zds.Connected, "ztunnel connected")
			}
			err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5"))
			if tc.wantErr {
				var se *podapi.StatusError
				if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(se.Msg, ErrZtunnelDown.Error()) {
					t.Fatalf("add err = %v, want 500 ztunnel not available", err)
				}
				// Rolled back; with no ztunnel at all it was never installed (a silent
				// ztunnel lets the reconcile loop retry, so only the rollback is checked).
				if tc.ztunnel == "none" && e.redir.has("u1") || tc.ztunnel == "silent" && !slices.Contains(e.j.list(), "redirect unenrol u1") {
					t.Fatalf("redirection not rolled back under the closed policy: %v", e.j.list())
				}
				return
			}
			if err != nil || !e.redir.has("u1") {
				t.Fatalf("add err = %v, redirected = %v; want the pod started and redirected", err, e.redir.has("u1"))
			}
		})
	}
}

func TestZtunnelDownClosedEnrolsWhenZtunnelReturns(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "", ""))
	a, _ := e.startAgent(func(c *Config) {
		c.ZtunnelDown = ZtunnelDownClosed
		c.Resync = 20 * time.Millisecond
	})
	if err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5")); err == nil {
		t.Fatal("add succeeded with no ztunnel under the closed policy")
	}
	z := newFakeZtunnel(e.j)
	e.startZtunnel(z)
	eventually(t, func() bool { return z.info("u1") != nil && e.redir.has("u1") && a.zds.Acked("u1") }, "enrolled by resync once ztunnel is back")
}

func TestParseZtunnelDownPolicy(t *testing.T) {
	for in, want := range map[string]ZtunnelDownPolicy{"": ZtunnelDownOpen, "open": ZtunnelDownOpen, "closed": ZtunnelDownClosed} {
		if got, err := ParseZtunnelDownPolicy(in); err != nil || got != want {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
	if _, err := ParseZtunnelDownPolicy("maybe"); err == nil {
		t.Error("want an error for an unknown policy")
	}
}

func TestNewRequiresOneConfigSource(t *testing.T) {
	e := newEnv(t)
	base := Config{ZDSSocket: e.zdsSock, CNISocket: e.cniSock, CgroupRoot: e.cgroupRoot, StateDir: e.stateDir, Redirector: e.redir}
	both := base
	both.ConfigDir, both.Source = e.configDir, &kube.Source{}
	for name, cfg := range map[string]Config{"neither": base, "both": both} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// silentSource never delivers a snapshot.
type silentSource struct{}

func (silentSource) Run(ctx context.Context, _ func(*kubefile.Snapshot)) error {
	<-ctx.Done()
	return nil
}

func TestWaitServing(t *testing.T) {
	e := newEnv(t)
	a, _ := e.startAgent(func(c *Config) { c.ConfigDir, c.Source = "", silentSource{} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.WaitServing(ctx); err == nil {
		t.Fatal("serving before the first snapshot")
	}

	e2 := newEnv(t)
	e2.writeConfig(nsAmbient)
	b, _ := e2.startAgent()
	if err := b.WaitServing(ctxT(t)); err != nil {
		t.Fatalf("file-mode agent not serving: %v", err)
	}
}
