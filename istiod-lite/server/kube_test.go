package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	istiokube "github.com/ambitmesh/ambit/istiod-lite/kube"
	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// kubeBinEnv names the directory of the kube-apiserver, etcd and controller-manager
// binaries (make kube-tools).
const kubeBinEnv = "AMBIT_KUBE_BIN"

func id(ns, sa string) spiffe.Identity {
	return spiffe.Identity{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: sa}
}

// TestKubernetesMode runs against a real kube-apiserver: the informer source sees
// objects and policies (F-CP-1), pod-bound service account tokens pass TokenReview
// with their node, and istiod-lite in Kubernetes mode stores its root in a Secret,
// publishes the root ConfigMap and refuses cross-node and cross-identity certificate
// requests (F-SEC-1).
func TestKubernetesMode(t *testing.T) {
	bin := os.Getenv(kubeBinEnv)
	if bin == "" {
		t.Skipf("%s is not set: run `make kube-tools` and set it to the binaries' directory", kubeBinEnv)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cluster, err := kube.Start(ctx, kube.Options{BinDir: bin, Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.Close(); err != nil {
			t.Error(err)
		}
	})
	kc := kubernetes.NewForConfigOrDie(cluster.RESTConfig)
	ic := istioclient.NewForConfigOrDie(cluster.RESTConfig)
	installSecurityCRDs(ctx, t, dynamic.NewForConfigOrDie(cluster.RESTConfig))
	createMesh(ctx, t, kc, ic)

	t.Run("source", func(t *testing.T) { testSource(ctx, t, kc, ic) })
	t.Run("tokenreview", func(t *testing.T) { testTokenReview(ctx, t, kc) })
	t.Run("server", func(t *testing.T) { testKubeServer(ctx, t, cluster, kc) })
}

// must turns a (value, error) result into a function of the test that fails it on
// error: must(f())(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// createMesh: nodes node-a and node-b; ztunnel on node-a; in the ambient namespace
// "shop", reviews on node-a and ratings on node-b behind a Service; one policy.
func createMesh(ctx context.Context, t *testing.T, kc kubernetes.Interface, ic istioclient.Interface) {
	t.Helper()
	create := metav1.CreateOptions{}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}},
	} {
		must(kc.CoreV1().Namespaces().Create(ctx, ns, create))(t)
	}
	for _, n := range []string{"node-a", "node-b"} {
		must(kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, create))(t)
	}
	pods := []struct{ ns, name, sa, node, ip string }{
		{"istio-system", "ztunnel-a", "ztunnel", "node-a", "10.20.1.2"},
		{"shop", "reviews-1", "reviews", "node-a", "10.20.1.10"},
		{"shop", "ratings-1", "ratings", "node-b", "10.20.2.10"},
	}
	for _, p := range pods {
		must(kc.CoreV1().ServiceAccounts(p.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: p.sa}}, create))(t)
		pod := must(kc.CoreV1().Pods(p.ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: map[string]string{"app": p.sa}},
			Spec: corev1.PodSpec{NodeName: p.node, ServiceAccountName: p.sa,
				Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 9080}}}}},
		}, create))(t)
		// No kubelet runs: play its part and report the pod running with its IP.
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.ip, PodIPs: []corev1.PodIP{{IP: p.ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		must(kc.CoreV1().Pods(p.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}))(t)
	}
	must(kc.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}},
	}, create))(t)
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-all", Namespace: "shop"}}
	eventually(t, time.Minute, "AuthorizationPolicy accepted", func() (bool, error) {
		_, err := ic.SecurityV1().AuthorizationPolicies("shop").Create(ctx, ap, create)
		return err == nil, err
	})
}

// installSecurityCRDs installs minimal AuthorizationPolicy and PeerAuthentication CRDs
// (schema-less: the test needs the API, not Istio's validation).
func installSecurityCRDs(ctx context.Context, t *testing.T, dc dynamic.Interface) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, kind := range []struct{ kind, plural string }{
		{"AuthorizationPolicy", "authorizationpolicies"}, {"PeerAuthentication", "peerauthentications"},
	} {
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": kind.plural + ".security.istio.io"},
			"spec": map[string]any{
				"group": "security.istio.io",
				"scope": "Namespaced",
				"names": map[string]any{"kind": kind.kind, "listKind": kind.kind + "List", "plural": kind.plural},
				"versions": []any{map[string]any{
					"name": "v1", "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{
						"type": "object", "x-kubernetes-preserve-unknown-fields": true,
					}},
				}},
			},
		}}
		must(dc.Resource(gvr).Create(ctx, crd, metav1.CreateOptions{}))(t)
	}
}

func testSource(ctx context.Context, t *testing.T, kc kubernetes.Interface, ic istioclient.Interface) {
	var (
		mu     sync.Mutex
		latest *kubefile.Snapshot
	)
	src := &istiokube.Source{Client: kc, Istio: ic, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnChange: func(s *kubefile.Snapshot) {
			mu.Lock()
			defer mu.Unlock()
			latest = s
		}}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(sctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	eventually(t, time.Minute, "snapshot with the mesh", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		s := latest
		if s == nil {
			return false, errors.New("no snapshot")
		}
		ok := s.Pod("shop", "reviews-1") != nil && s.Pod("istio-system", "ztunnel-a") != nil &&
			len(s.Nodes) == 2 && s.Namespace("shop") != nil && len(s.AuthorizationPolicies) == 1 &&
			hasService(s, "shop", "reviews") && len(s.EndpointSlices) > 0
		return ok, errors.New("incomplete snapshot")
	})
	if p, ok := src.Pod("istio-system", "ztunnel-a"); !ok || p.Spec.NodeName != "node-a" {
		t.Errorf("Pod(istio-system/ztunnel-a) = %v, %v", p, ok)
	}

	// A change arrives as a new snapshot.
	must(kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}))(t)
	eventually(t, time.Minute, "new namespace", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return latest.Namespace("late") != nil, nil
	})
}

func hasService(s *kubefile.Snapshot, ns, name string) bool {
	for _, svc := range s.Services {
		if svc.Namespace == ns && svc.Name == name {
			return true
		}
	}
	return false
}

// podToken asks the API server for a token of the pod's service account bound to the
// pod, as the kubelet projects it for ztunnel.
func podToken(ctx context.Context, t *testing.T, kc kubernetes.Interface, ns, sa, pod, audience string) string {
	t.Helper()
	p := must(kc.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{}))(t)
	exp := int64(600)
	tr := must(kc.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: &exp,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: p.UID},
	}}, metav1.CreateOptions{}))(t)
	return tr.Status.Token
}

func testTokenReview(ctx context.Context, t *testing.T, kc kubernetes.Interface) {
	a := &caserver.TokenReviewAuthenticator{Client: kc, TrustDomain: "cluster.local"}
	incoming := func(tok string) context.Context {
		return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
	}
	c, err := a.Authenticate(incoming(podToken(ctx, t, kc, "istio-system", "ztunnel", "ztunnel-a", "istio-ca")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity != id("istio-system", "ztunnel") || c.Node != "node-a" {
		t.Errorf("caller = %+v, want istio-system/ztunnel on node-a", c)
	}
	_, err = a.Authenticate(incoming(podToken(ctx, t, kc, "istio-system", "ztunnel", "ztunnel-a", "some-other-audience")))
	if !errors.Is(err, caserver.ErrTokenRejected) {
		t.Errorf("token for another audience: %v, want ErrTokenRejected", err)
	}
	_, err = a.Authenticate(incoming("not-a-token"))
	if !errors.Is(err, caserver.ErrTokenRejected) {
		t.Errorf("garbage token: %v, want ErrTokenRejected", err)
	}
}

func testKubeServer(ctx context.Context, t *testing.T, cluster *kube.Cluster, kc kubernetes.Interface) {
	cfg := Config{
		Kubeconfig: cluster.Kubeconfig, GRPCAddr: freeAddr(t), GRPCPlaintextAddr: freeAddr(t),
		MonitoringAddr: freeAddr(t), TLSDNSNames: []string{"istiod.istio-system.svc"},
	}
	startServer(t, cfg)

	secret := must(kc.CoreV1().Secrets("istio-system").Get(ctx, istiokube.DefaultCASecret, metav1.GetOptions{}))(t)
	root := string(secret.Data["root-cert.pem"])
	if root == "" {
		t.Fatal("generated CA secret has no root-cert.pem")
	}
	for _, ns := range []string{"default", "shop", "istio-system", "kube-system", "late"} {
		eventually(t, time.Minute, "root ConfigMap in "+ns, func() (bool, error) {
			cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, istiokube.RootCertConfigMap, metav1.GetOptions{})
			return err == nil && cm.Data["root-cert.pem"] == root && cm.Labels["istio.io/config"] == "true", err
		})
	}

	ztunnel := podToken(ctx, t, kc, "istio-system", "ztunnel", "ztunnel-a", "istio-ca")
	reviews := podToken(ctx, t, kc, "shop", "reviews", "reviews-1", "istio-ca")
	for _, tc := range []struct {
		name        string
		token       string
		id          spiffe.Identity
		impersonate bool
		want        codes.Code
	}{
		{"ztunnel for a pod on its node", ztunnel, id("shop", "reviews"), true, codes.OK},
		{"ztunnel for a pod on another node", ztunnel, id("shop", "ratings"), true, codes.PermissionDenied},
		{"pod for itself", reviews, id("shop", "reviews"), false, codes.OK},
		{"pod for another identity", reviews, id("shop", "ratings"), false, codes.InvalidArgument},
		{"pod impersonating", reviews, id("shop", "ratings"), true, codes.PermissionDenied},
		{"bad token", "garbage", id("shop", "reviews"), false, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := caclient.New(caclient.Config{Address: cfg.GRPCPlaintextAddr, Token: func() (string, error) { return tc.token, nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cert, err := c.Fetch(ctx, tc.id, tc.impersonate)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Fetch: %v (%v), want %v", got, err, tc.want)
			}
			if err == nil && cert.Identity != tc.id {
				t.Errorf("certificate for %s, want %s", cert.Identity, tc.id)
			}
		})
	}
}
