package waypoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

const waitFor = 10 * time.Second

func TestClassCreatedAndAccepted(t *testing.T) {
	kc, gc := newFakes()
	startController(t, kc, gc, testConfig())
	eventually(t, waitFor, "GatewayClass accepted", func() (bool, error) {
		cl, err := gc.GatewayV1().GatewayClasses().Get(t.Context(), wire.WaypointGatewayClass, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if cl.Spec.ControllerName != DefaultControllerName {
			return false, fmt.Errorf("controllerName %q", cl.Spec.ControllerName)
		}
		acc, err := condition(cl.Status.Conditions, "Accepted")
		return err == nil && acc.Status == metav1.ConditionTrue, err
	})
}

// TestWaypointLifecycle: a Gateway gets its objects, then Programmed follows the
// Service's cluster IP, the Deployment's availability and SetConfigError.
func TestWaypointLifecycle(t *testing.T) {
	kc, gc := newFakes()
	c := startController(t, kc, gc, testConfig())
	ctx := t.Context()
	gw := waypointGateway("shop", "wp")
	gw.Labels = map[string]string{wire.LabelWaypointFor: wire.WaypointForAll}
	if _, err := gc.GatewayV1().Gateways("shop").Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: "shop", Name: "wp"}
	waitProgrammed(t, c, nn, metav1.ConditionFalse, "Pending", "cluster IP")

	dep, err := kc.AppsV1().Deployments("shop").Get(ctx, "wp", metav1.GetOptions{})
	must(t, err)
	sa, err := kc.CoreV1().ServiceAccounts("shop").Get(ctx, "wp", metav1.GetOptions{})
	must(t, err)
	svc, err := kc.CoreV1().Services("shop").Get(ctx, "wp", metav1.GetOptions{})
	must(t, err)
	for _, o := range []metav1.Object{dep, sa, svc} {
		assertOwned(t, o, gw)
	}
	assertDeployment(t, dep, testConfig())
	assertService(t, svc)

	// No API server allocates: play its part.
	must(t, retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		svc, err := kc.CoreV1().Services("shop").Get(ctx, "wp", metav1.GetOptions{})
		if err != nil {
			return err
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.20", []string{"10.96.0.20"}
		_, err = kc.CoreV1().Services("shop").Update(ctx, svc, metav1.UpdateOptions{})
		return err
	}))
	got := waitProgrammed(t, c, nn, metav1.ConditionFalse, "Pending", "available replica")
	wantAddrs := []string{"IPAddress=10.96.0.20", "Hostname=wp.shop.svc.cluster.local"}
	if a := addresses(got); !slices.Equal(a, wantAddrs) {
		t.Errorf("addresses = %v, want %v", a, wantAddrs)
	}

	// No kubelet runs: report the replica available as the deployment controller would.
	must(t, retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		dep, err := kc.AppsV1().Deployments("shop").Get(ctx, "wp", metav1.GetOptions{})
		if err != nil {
			return err
		}
		dep.Status.AvailableReplicas, dep.Status.Replicas = 1, 1
		_, err = kc.AppsV1().Deployments("shop").UpdateStatus(ctx, dep, metav1.UpdateOptions{})
		return err
	}))
	got = waitProgrammed(t, c, nn, metav1.ConditionTrue, "Programmed", "")
	for _, typ := range []string{"Accepted", "Programmed"} {
		if cnd, _ := condition(got.Status.Conditions, typ); cnd.ObservedGeneration != 1 {
			t.Errorf("%s observedGeneration = %d, want 1", typ, cnd.ObservedGeneration)
		}
	}
	if len(got.Status.Listeners) != 1 || got.Status.Listeners[0].Name != ListenerName {
		t.Fatalf("listener status = %+v", got.Status.Listeners)
	}
	if cnd, err := condition(got.Status.Listeners[0].Conditions, "Programmed"); err != nil || cnd.Status != metav1.ConditionTrue {
		t.Errorf("listener Programmed = %+v, %v", cnd, err)
	}

	c.SetConfigError(nn, errors.New("cluster outbound|80||x: no endpoints"))
	waitProgrammed(t, c, nn, metav1.ConditionFalse, "Invalid", "no endpoints")
	c.SetConfigError(nn, nil)
	waitProgrammed(t, c, nn, metav1.ConditionTrue, "Programmed", "")

	// An owned object deleted by someone is put back.
	must(t, kc.CoreV1().ServiceAccounts("shop").Delete(ctx, "wp", metav1.DeleteOptions{}))
	eventually(t, waitFor, "ServiceAccount recreated", func() (bool, error) {
		_, err := kc.CoreV1().ServiceAccounts("shop").Get(ctx, "wp", metav1.GetOptions{})
		return err == nil, err
	})
}

// waitProgrammed waits for the Gateway's Programmed condition to have status, reason
// and a message containing msg; it returns the Gateway.
func waitProgrammed(t *testing.T, c *Controller, nn types.NamespacedName, status metav1.ConditionStatus, reason, msg string) *gatewayv1.Gateway {
	t.Helper()
	var gw *gatewayv1.Gateway
	eventually(t, waitFor, fmt.Sprintf("Programmed %s/%s", status, reason), func() (bool, error) {
		var err error
		gw, err = c.gateway.GatewayV1().Gateways(nn.Namespace).Get(t.Context(), nn.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cnd, err := condition(gw.Status.Conditions, "Programmed")
		if err != nil {
			return false, err
		}
		ok := cnd.Status == status && cnd.Reason == reason && strings.Contains(cnd.Message, msg)
		return ok, fmt.Errorf("programmed = %s/%s %q", cnd.Status, cnd.Reason, cnd.Message)
	})
	return gw
}

func addresses(gw *gatewayv1.Gateway) []string {
	var out []string
	for _, a := range gw.Status.Addresses {
		out = append(out, string(*a.Type)+"="+a.Value)
	}
	return out
}

func assertOwned(t *testing.T, o metav1.Object, gw *gatewayv1.Gateway) {
	t.Helper()
	refs := o.GetOwnerReferences()
	want := metav1.OwnerReference{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: gw.Name,
		UID: gw.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	if len(refs) != 1 || refs[0].APIVersion != want.APIVersion || refs[0].Kind != want.Kind || refs[0].Name != want.Name ||
		refs[0].UID != want.UID || !*refs[0].Controller || !*refs[0].BlockOwnerDeletion {
		t.Errorf("%s owner references = %+v, want [%+v]", o.GetName(), refs, want)
	}
	l := o.GetLabels()
	if l[wire.LabelGatewayName] != gw.Name || l[LabelManaged] != ManagedValue || l[LabelGatewayClassName] != wire.WaypointGatewayClass {
		t.Errorf("%s labels = %v", o.GetName(), l)
	}
}

func assertDeployment(t *testing.T, dep *appsv1.Deployment, cfg Config) {
	t.Helper()
	pod := dep.Spec.Template
	if dep.Spec.Selector == nil || dep.Spec.Selector.MatchLabels[wire.LabelGatewayName] != "wp" || len(dep.Spec.Selector.MatchLabels) != 1 {
		t.Errorf("selector = %v", dep.Spec.Selector)
	}
	if pod.Labels[wire.LabelDataplaneMode] != wire.DataplaneModeNone || pod.Labels[wire.LabelGatewayName] != "wp" {
		t.Errorf("pod labels = %v", pod.Labels)
	}
	if pod.Spec.ServiceAccountName != "wp" || len(pod.Spec.Containers) != 1 {
		t.Fatalf("pod spec = %+v", pod.Spec)
	}
	ctr := pod.Spec.Containers[0]
	if ctr.Name != "waypoint" || ctr.Image != cfg.Image {
		t.Errorf("container %q image %q", ctr.Name, ctr.Image)
	}
	wantArgs := []string{
		"--xds-address=istiod.istio-system.svc:15012", "--xds-server-name=istiod.istio-system.svc",
		"--root-cert=/var/run/secrets/istio/root-cert.pem", "--token-file=/var/run/secrets/tokens/istio-token",
		"--cluster-id=c1", "--trust-domain=cluster.local", "--admin-addr=127.0.0.1:15000",
		"--metrics-addr=:15020", "--readiness-addr=:15021", "--log-level=debug",
	}
	if !slices.Equal(ctr.Args, wantArgs) {
		t.Errorf("args = %q\nwant   %q", ctr.Args, wantArgs)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
		default:
			env[e.Name] = e.Value
		}
	}
	wantEnv := map[string]string{"POD_NAME": "field:metadata.name", "POD_NAMESPACE": "field:metadata.namespace",
		"INSTANCE_IP": "field:status.podIP", "SERVICE_ACCOUNT": "field:spec.serviceAccountName", "GATEWAY_NAME": "wp"}
	if fmt.Sprint(env) != fmt.Sprint(wantEnv) {
		t.Errorf("env = %v, want %v", env, wantEnv)
	}
	var ports []string
	for _, p := range ctr.Ports {
		ports = append(ports, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
	}
	if want := []string{"mesh=15008", "metrics=15020", "status-port=15021"}; !slices.Equal(ports, want) {
		t.Errorf("ports = %v, want %v", ports, want)
	}
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz/ready" || p.HTTPGet.Port.IntValue() != 15021 {
		t.Errorf("readiness probe = %+v", p)
	}
	assertMounts(t, pod.Spec, ctr, map[string]string{"istio-token": TokenDir, "istiod-ca-cert": RootCertDir})
}

// assertMounts checks the token and root volumes and that mounts match want
// (volume name -> mount path).
func assertMounts(t *testing.T, spec corev1.PodSpec, ctr corev1.Container, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		got[m.Name] = m.MountPath
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mounts = %v, want %v", got, want)
	}
	for _, v := range spec.Volumes {
		switch v.Name {
		case "istio-token":
			if v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil {
				t.Fatalf("token volume = %+v", v)
			}
			tok := v.Projected.Sources[0].ServiceAccountToken
			if tok.Audience != "istio-ca" || tok.Path != "istio-token" {
				t.Errorf("token projection = %+v", tok)
			}
		case "istiod-ca-cert":
			if v.ConfigMap == nil || v.ConfigMap.Name != "istio-ca-root-cert" || len(v.ConfigMap.Items) != 1 || v.ConfigMap.Items[0].Key != "root-cert.pem" {
				t.Errorf("root volume = %+v", v)
			}
		}
	}
}

func assertService(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Selector[wire.LabelGatewayName] != "wp" || len(svc.Spec.Selector) != 1 {
		t.Errorf("service spec = %+v", svc.Spec)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s=%d->%s/%s", p.Name, p.Port, p.TargetPort.String(), *p.AppProtocol))
	}
	if want := []string{"status-port=15021->15021/tcp", "mesh=15008->15008/all"}; !slices.Equal(ports, want) {
		t.Errorf("service ports = %v, want %v", ports, want)
	}
	if svc.Labels[wire.LabelWaypointFor] != wire.WaypointForAll {
		t.Errorf("service labels = %v, want %s copied", svc.Labels, wire.LabelWaypointFor)
	}
}

// TestEnvoyEngine: the Deployment runs Envoy on the owned bootstrap ConfigMap.
func TestEnvoyEngine(t *testing.T) {
	kc, gc := newFakes()
	cfg := testConfig()
	cfg.Engine, cfg.EnvoyImage, cfg.LogLevel = EngineEnvoy, "envoyproxy/envoy:v1.36.2", "warn"
	c := startController(t, kc, gc, cfg)
	gw := waypointGateway("shop", "wp")
	_, err := gc.GatewayV1().Gateways("shop").Create(t.Context(), gw, metav1.CreateOptions{})
	must(t, err)
	waitProgrammed(t, c, types.NamespacedName{Namespace: "shop", Name: "wp"}, metav1.ConditionFalse, "Pending", "")

	cm, err := kc.CoreV1().ConfigMaps("shop").Get(t.Context(), "wp-envoy-bootstrap", metav1.GetOptions{})
	must(t, err)
	assertOwned(t, cm, gw)
	if !strings.Contains(cm.Data["envoy.yaml"], "DELTA_GRPC") {
		t.Errorf("bootstrap = %s", cm.Data["envoy.yaml"])
	}
	dep, err := kc.AppsV1().Deployments("shop").Get(t.Context(), "wp", metav1.GetOptions{})
	must(t, err)
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != cfg.EnvoyImage || len(ctr.Args) < 6 || ctr.Args[0] != "-c" || ctr.Args[1] != "/etc/istio/proxy/envoy.yaml" ||
		ctr.Args[2] != "--config-yaml" || !slices.Contains(ctr.Args, "warning") {
		t.Errorf("envoy container image %q args %q", ctr.Image, ctr.Args)
	}
	assertMounts(t, dep.Spec.Template.Spec, ctr, map[string]string{"istio-token": TokenDir, "istiod-ca-cert": RootCertDir, "istio-envoy": BootstrapDir})
	var found bool
	for _, v := range dep.Spec.Template.Spec.Volumes {
		found = found || (v.Name == "istio-envoy" && v.ConfigMap != nil && v.ConfigMap.Name == "wp-envoy-bootstrap")
	}
	if !found {
		t.Errorf("no bootstrap volume in %+v", dep.Spec.Template.Spec.Volumes)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	kc, gc := newFakes()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no image", Config{}},
		{"envoy without image", Config{Image: "x", Engine: EngineEnvoy}},
		{"unknown engine", Config{Image: "x", Engine: "nginx"}},
		{"bad log level", Config{Image: "x", LogLevel: "loud"}},
		{"bad xds address", Config{Image: "x", XDSAddress: "istiod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(kc, gc, tc.cfg, nil); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestWaitsForCRDs: without the Gateway API served, Run keeps asking discovery,
// writes nothing, and returns nil when its context ends.
func TestWaitsForCRDs(t *testing.T) {
	kc, gc := newFakes()
	gc.Resources = nil
	cfg := testConfig()
	cfg.CRDCheckInterval = time.Millisecond
	c, err := New(kc, gc, cfg, testLogger(t))
	must(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	eventually(t, waitFor, "discovery asked three times", func() (bool, error) {
		n := 0
		for _, a := range gc.Actions() {
			if a.GetResource().Resource == "resource" {
				n++
			}
		}
		return n >= 3, fmt.Errorf("%d discovery calls", n)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	for _, a := range gc.Actions() {
		if a.GetVerb() != "get" || a.GetResource().Resource != "resource" {
			t.Errorf("unexpected call while waiting for CRDs: %v", a)
		}
	}
}
