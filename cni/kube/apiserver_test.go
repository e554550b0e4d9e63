package kube

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// agentRules are the API rights the node agent needs in Kubernetes mode; the test runs
// the Source and the Annotator as a service account holding only these.
var agentRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"patch"}},
}

// TestAPIServerSourceAndAnnotator runs against a real kube-apiserver (e2e/kube; set
// AMBIT_KUBE_BIN to the directory `make kube-tools` builds): the field selector keeps
// other nodes' pods out, label changes arrive, and the status-subresource merge patch
// sets and removes the annotation with only the rights in agentRules, and is refused
// for a pod whose UID changed.
func TestAPIServerSourceAndAnnotator(t *testing.T) {
	bin := os.Getenv("AMBIT_KUBE_BIN")
	if bin == "" {
		t.Skip("AMBIT_KUBE_BIN is not set: run `make kube-tools` and point it at the output directory")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c, err := kube.Start(ctx, kube.Options{BinDir: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	admin, err := NewClient(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	setupAgentAccount(ctx, t, admin)
	asAgent := rest.CopyConfig(c.RESTConfig)
	asAgent.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:istio-system:ambit-cni"}
	agentClient, err := kubernetes.NewForConfig(asAgent)
	if err != nil {
		t.Fatal(err)
	}

	mustCreate(ctx, t, admin, testNamespace("apps", nil))
	web := createPod(ctx, t, admin, testPod("apps", "web", "", "node-a", nil))
	createPod(ctx, t, admin, testPod("apps", "far", "", "node-b", nil))

	rec := &recorder{}
	src := &Source{Client: agentClient, NodeName: "node-a", Logger: slog.New(slog.DiscardHandler)}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(sctx, rec.onChange) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("source: %v", err)
		}
	})
	eventually(t, "snapshot with this node's pod only", func() bool {
		s := rec.latest()
		return s != nil && slices.Equal(podNames(s), []string{"apps/web"})
	})

	ambient := testNamespace("apps", map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeAmbient})
	if _, err := admin.CoreV1().Namespaces().Update(ctx, ambient, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace label", func() bool {
		return rec.latest().Namespace("apps").Labels[wire.LabelDataplaneMode] == wire.DataplaneModeAmbient
	})

	an := &Annotator{Client: agentClient}
	if err := an.SetRedirection(ctx, "apps", "web", string(web.UID), true); err != nil {
		t.Fatalf("annotate with pods/status rights: %v", err)
	}
	eventually(t, "annotation in the snapshot", func() bool {
		p := rec.latest().Pod("apps", "web")
		return p != nil && p.Annotations[wire.AnnotationRedirection] == wire.RedirectionEnabled
	})
	if err := an.SetRedirection(ctx, "apps", "web", "00000000-0000-0000-0000-000000000000", true); !apierrors.IsInvalid(err) {
		t.Fatalf("patch with a stale uid: err = %v, want Invalid", err)
	}
	if err := an.SetRedirection(ctx, "apps", "web", string(web.UID), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "annotation removed", func() bool {
		_, ok := rec.latest().Pod("apps", "web").Annotations[wire.AnnotationRedirection]
		return !ok
	})
	if err := an.SetRedirection(ctx, "apps", "gone", "", false); err != nil {
		t.Fatalf("remove from a missing pod: %v", err)
	}
}

func setupAgentAccount(ctx context.Context, t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	mustCreate(ctx, t, admin, testNamespace("istio-system", nil))
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ambit-cni"}, Rules: agentRules}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ambit-cni"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "ambit-cni"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "istio-system", Name: "ambit-cni"}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustCreate(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns *corev1.Namespace) {
	t.Helper()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createPod creates p, retrying while the namespace's default service account does not
// exist yet (the controller manager creates it).
func createPod(ctx context.Context, t *testing.T, admin kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	var out *corev1.Pod
	eventually(t, "create pod "+p.Name, func() bool {
		var err error
		out, err = admin.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		return err == nil
	})
	return out
}
