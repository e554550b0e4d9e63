package waypoint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// kubeBinEnv names the directory of etcd, kube-apiserver and kube-controller-manager
// (make kube-tools); unset, the repository's .cache/kube/<version>/ is used if built.
const kubeBinEnv = "AMBIT_KUBE_BIN"

// crdDir holds the Gateway API CRDs (make charts-crds).
var crdDir = filepath.Join("..", "..", "charts", "base", "crds")

func kubeBinDir(t *testing.T) string {
	if d := os.Getenv(kubeBinEnv); d != "" {
		return d
	}
	if m, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "kube", "*", "kube-apiserver")); len(m) > 0 {
		return filepath.Dir(m[0])
	}
	t.Skipf("no kube-apiserver: run `make kube-tools` (or set %s to the binaries' directory)", kubeBinEnv)
	return ""
}

// TestKubeAPIServer runs the controller against a real kube-apiserver and
// kube-controller-manager (no kubelet): a waypoint Gateway gets its objects and status
// within 5 s (F-WP-1), and deleting it (foreground) lets the garbage collector remove
// them without the controller putting them back.
func TestKubeAPIServer(t *testing.T) {
	bin := kubeBinDir(t)
	for _, f := range []string{"gatewayclasses", "gateways"} {
		if _, err := os.Stat(filepath.Join(crdDir, f+".gateway.networking.k8s.io.yaml")); err != nil {
			t.Skipf("Gateway API CRDs missing in %s: run `make charts-crds` (%v)", crdDir, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cluster, err := kube.Start(ctx, kube.Options{BinDir: bin, Dir: t.TempDir(), Logger: testLogger(t)})
	must(t, err)
	t.Cleanup(func() {
		if err := cluster.Close(); err != nil {
			t.Error(err)
		}
	})
	kc := kubernetes.NewForConfigOrDie(cluster.RESTConfig)
	gc := gatewayclient.NewForConfigOrDie(cluster.RESTConfig)
	installCRDs(ctx, t, dynamic.NewForConfigOrDie(cluster.RESTConfig))
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	must(t, err)

	cfg := testConfig()
	cfg.CRDCheckInterval = 100 * time.Millisecond
	c, err := New(kc, gc, cfg, testLogger(t))
	must(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, time.Minute, "GatewayClass accepted", func() (bool, error) {
		cl, err := gc.GatewayV1().GatewayClasses().Get(ctx, wire.WaypointGatewayClass, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		acc, err := condition(cl.Status.Conditions, "Accepted")
		return err == nil && acc.Status == metav1.ConditionTrue, err
	})

	gw := waypointGateway("shop", "wp")
	gw.UID, gw.Generation = "", 0
	gw, err = gc.GatewayV1().Gateways("shop").Create(ctx, gw, metav1.CreateOptions{})
	must(t, err)
	eventually(t, 5*time.Second, "waypoint objects and status", func() (bool, error) {
		return checkDeployed(ctx, kc, gc, gw)
	})

	fg := metav1.DeletePropagationForeground
	must(t, gc.GatewayV1().Gateways("shop").Delete(ctx, "wp", metav1.DeleteOptions{PropagationPolicy: &fg}))
	eventually(t, 2*time.Minute, "gateway and its objects deleted", func() (bool, error) {
		for _, get := range []func() error{
			func() error {
				_, err := gc.GatewayV1().Gateways("shop").Get(ctx, "wp", metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := kc.AppsV1().Deployments("shop").Get(ctx, "wp", metav1.GetOptions{})
				return err
			},
			func() error { _, err := kc.CoreV1().Services("shop").Get(ctx, "wp", metav1.GetOptions{}); return err },
			func() error {
				_, err := kc.CoreV1().ServiceAccounts("shop").Get(ctx, "wp", metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("still there (%v)", err)
			}
		}
		return true, nil
	})
}

// checkDeployed: SA, Deployment and Service owned by gw; status Accepted True,
// Programmed False Pending (no kubelet makes a replica available), addresses with
// the Service's cluster IP.
func checkDeployed(ctx context.Context, kc kubernetes.Interface, gc gatewayclient.Interface, gw *gatewayv1.Gateway) (bool, error) {
	sa, err := kc.CoreV1().ServiceAccounts("shop").Get(ctx, "wp", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	dep, err := kc.AppsV1().Deployments("shop").Get(ctx, "wp", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	svc, err := kc.CoreV1().Services("shop").Get(ctx, "wp", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, o := range []metav1.Object{sa, dep, svc} {
		if ref := metav1.GetControllerOf(o); ref == nil || ref.UID != gw.UID || !*ref.BlockOwnerDeletion {
			return false, fmt.Errorf("%s owner = %+v", o.GetName(), ref)
		}
	}
	got, err := gc.GatewayV1().Gateways("shop").Get(ctx, "wp", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	acc, _ := condition(got.Status.Conditions, "Accepted")
	prog, _ := condition(got.Status.Conditions, "Programmed")
	if acc.Status != metav1.ConditionTrue || acc.ObservedGeneration != got.Generation ||
		prog.Status != metav1.ConditionFalse || prog.Reason != "Pending" {
		return false, fmt.Errorf("conditions = %+v", got.Status.Conditions)
	}
	if svc.Spec.ClusterIP == "" || !slices.Contains(addresses(got), "IPAddress="+svc.Spec.ClusterIP) {
		return false, fmt.Errorf("addresses = %v, service IP %q", addresses(got), svc.Spec.ClusterIP)
	}
	return true, nil
}

// installCRDs creates the GatewayClass and Gateway CRDs and waits until Gateways can
// be listed.
func installCRDs(ctx context.Context, t *testing.T, dc dynamic.Interface) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, f := range []string{"gatewayclasses", "gateways"} {
		data, err := os.ReadFile(filepath.Join(crdDir, f+".gateway.networking.k8s.io.yaml"))
		must(t, err)
		js, err := yaml.YAMLToJSON(data)
		must(t, err)
		crd := &unstructured.Unstructured{}
		must(t, crd.UnmarshalJSON(js))
		if _, err := dc.Resource(gvr).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", crd.GetName(), err)
		}
	}
	gwGVR := schema.GroupVersionResource{Group: gatewayv1.GroupName, Version: "v1", Resource: "gateways"}
	eventually(t, time.Minute, "Gateway CRD established", func() (bool, error) {
		_, err := dc.Resource(gwGVR).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, err
	})
}
