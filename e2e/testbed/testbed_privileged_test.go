package testbed

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// startTestbed starts a two-node testbed or skips when not root or the binaries are
// not configured (AMBIT_KUBE_BIN from make kube-tools, AMBIT_BIN from make build).
func startTestbed(ctx context.Context, t *testing.T) *Testbed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, cgroups, bpffs")
	}
	kubeBin, bin := os.Getenv("AMBIT_KUBE_BIN"), os.Getenv("AMBIT_BIN")
	if kubeBin == "" || bin == "" {
		t.Skip("AMBIT_KUBE_BIN and AMBIT_BIN must be set (make test-kube / make e2e)")
	}
	dir := t.TempDir()
	tb, err := Start(ctx, Options{
		Name: "tb", Nodes: []string{"node-a", "node-b"}, KubeBin: kubeBin, Bin: bin, Dir: dir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, dir)
		}
		if err := tb.Close(); err != nil {
			t.Error(err)
		}
	})
	return tb
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("--- %s\n%s", l, b)
	}
}

// echoPod is an ambit-echo server pod on node.
func echoPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "echo", Image: "ghcr.io/ambitmesh/ambit-echo:dev",
				Args: []string{"server", "--name", "$(POD_NAME)", "--http", ":8080", "--tcp", ":9000"},
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
			}},
		},
	}
}

// TestPrivilegedTestbedRunsPods checks the kubelet's whole pod lifecycle against the
// real API server: scheduling, CNI networking across nodes, status and readiness,
// EndpointSlices from the controller manager, and deletion with CNI DEL.
func TestPrivilegedTestbedRunsPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tb := startTestbed(ctx, t)
	pods := tb.Client.CoreV1().Pods("default")

	server := echoPod("server", "node-a")
	if _, err := pods.Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := echoPod("client", "") // bound by the scheduler
	client.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "node-b"}
	if _, err := pods.Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	srv, err := tb.WaitPodReady(ctx, "default", "server")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := tb.WaitPodReady(ctx, "default", "client")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Spec.NodeName != "node-b" || !strings.HasPrefix(cl.Status.PodIP, "10.20.2.") || !strings.HasPrefix(srv.Status.PodIP, "10.20.1.") {
		t.Fatalf("client on %s with %s, server %s", cl.Spec.NodeName, cl.Status.PodIP, srv.Status.PodIP)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "server"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "server"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := tb.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, "endpointslice with the server", func(ctx context.Context) (bool, error) {
		l, err := tb.Client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=server"})
		if err != nil {
			return false, err
		}
		for _, s := range l.Items {
			for _, e := range s.Endpoints {
				if len(e.Addresses) > 0 && e.Addresses[0] == srv.Status.PodIP && e.Conditions.Ready != nil && *e.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}

	sb, err := tb.Sandbox("default", "client")
	if err != nil {
		t.Fatal(err)
	}
	out, err := sb.Run(ctx, filepath.Join(os.Getenv("AMBIT_BIN"), "ambit-echo"), "http", "--url", "http://"+srv.Status.PodIP+":8080/hello")
	if err != nil {
		t.Fatalf("client → server: %v: %s", err, out)
	}
	var resp struct{ Pod, Peer string }
	if err := json.Unmarshal(out, &resp); err != nil || resp.Pod != "server" || !strings.HasPrefix(resp.Peer, cl.Status.PodIP+":") {
		t.Fatalf("response %s (%v)", out, err)
	}

	if err := pods.Delete(ctx, "server", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitPodGone(ctx, "default", "server"); err != nil {
		t.Fatal(err)
	}
	if tb.Node("node-a").Kubelet.Pod("default", "server") != nil {
		t.Fatal("sandbox still running after deletion")
	}
	if _, err := os.Stat(sb.NetnsPath); err != nil {
		t.Fatalf("client sandbox lost: %v", err)
	}
}
