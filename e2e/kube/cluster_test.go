package kube

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// kubeBinEnv names the directory holding the binaries hack/build-kube-tools.sh builds.
const kubeBinEnv = "AMBIT_KUBE_BIN"

// startCluster starts a control plane in t.TempDir() and registers its Close, or skips
// when the binaries are not configured.
func startCluster(ctx context.Context, t *testing.T) *Cluster {
	t.Helper()
	bin := os.Getenv(kubeBinEnv)
	if bin == "" {
		t.Skipf("%s is not set: run `make kube-tools` and set %s to its output directory (or use `make test-kube`)", kubeBinEnv, kubeBinEnv)
	}
	dir := t.TempDir()
	c, err := Start(ctx, Options{BinDir: bin, Dir: dir, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
				p := &process{name: name, logFile: filepath.Join(dir, "logs", name+".log")}
				t.Logf("%s log tail:\n%s", name, p.logTail(4096))
			}
		}
	})
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// eventually polls cond every 100ms until it returns true or ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func TestKubeAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	cs, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("default kubernetes service", func(t *testing.T) {
		eventually(ctx, t, "kubernetes service", func() (bool, error) {
			svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			return err == nil && svc.Spec.ClusterIP == KubernetesServiceIP, err
		})
	})

	t.Run("rbac denies an unprivileged service account", func(t *testing.T) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, subjectAccessReview(), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed {
			t.Fatalf("default service account may list secrets: %+v", sar.Status)
		}
	})

	const ns = "e2e-kube"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("endpointslice for a selector service", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "echo"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(ctx, t, "endpointslice for echo", func() (bool, error) {
			l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=echo"})
			return err == nil && len(l.Items) > 0, err
		})
	})

	t.Run("kubectl reads the kubeconfig", func(t *testing.T) {
		kubectl := filepath.Join(os.Getenv(kubeBinEnv), "kubectl")
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "get", "service", "-n", ns, "echo", "-o", "name").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "service/echo" {
			t.Fatalf("kubectl get service: %v: %s", err, out)
		}
	})

	t.Run("namespace deletion", func(t *testing.T) {
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(ctx, t, "namespace "+ns+" gone", func() (bool, error) {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
	})
}

// subjectAccessReview asks whether the default service account of "default" may list
// secrets, which bootstrap RBAC does not allow.
func subjectAccessReview() *authorizationv1.SubjectAccessReview {
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:default:default",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: "default", Verb: "list", Resource: "secrets",
		},
	}}
}
