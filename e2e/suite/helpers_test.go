package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/e2e/mesh"
	"github.com/ambitmesh/ambit/e2e/testbed"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// newNamespace creates a namespace (labelled for ambient when ambient is set) that is
// deleted when the test ends.
func newNamespace(ctx context.Context, t *testing.T, name string, ambient bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if ambient {
		ns.Labels[wire.LabelDataplaneMode] = wire.DataplaneModeAmbient
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := env.Client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
}

// setAmbient adds or removes the namespace's istio.io/dataplane-mode=ambient label.
func setAmbient(ctx context.Context, t *testing.T, name string, on bool) {
	t.Helper()
	v := "null"
	if on {
		v = `"` + wire.DataplaneModeAmbient + `"`
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, wire.LabelDataplaneMode, v)
	if _, err := env.Client.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// echoServer runs an ambit-echo server pod (HTTP 8080, TCP 9000) with its own service
// account on node, and a Service of the same name, and waits until it is ready.
func echoServer(ctx context.Context, t *testing.T, ns, name, node string) *corev1.Pod {
	t.Helper()
	pod := echoPod(ns, name, node, []string{"server", "--name", name, "--http", ":8080", "--tcp", ":9000"})
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "tcp", Port: 9000, TargetPort: intstr.FromInt32(9000)},
		}},
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return runPod(ctx, t, pod)
}

// sleeper runs a pod that only keeps its sandbox alive, to run clients in.
func sleeper(ctx context.Context, t *testing.T, ns, name, node string) *corev1.Pod {
	t.Helper()
	return runPod(ctx, t, echoPod(ns, name, node, []string{"server", "--name", name, "--http", "127.0.0.1:8080", "--tcp", "127.0.0.1:9000"}))
}

// echoPod is a pod running ambit-echo with args, with service account = name.
func echoPod(ns, name, node string, args []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: name,
			Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/ambitmesh/ambit-echo:dev", Args: args}},
		},
	}
}

// runPod creates the pod's service account and the pod, and waits until it is ready.
func runPod(ctx context.Context, t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: pod.Spec.ServiceAccountName, Namespace: pod.Namespace}}
	if _, err := env.Client.CoreV1().ServiceAccounts(pod.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := env.WaitPodReady(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tcpEcho makes one TCP echo exchange from the pod to addr (as the pod's own process).
func tcpEcho(ctx context.Context, from *corev1.Pod, addr string) (echo.TCPResult, error) {
	var r echo.TCPResult
	sb, err := env.Sandbox(from.Namespace, from.Name)
	if err != nil {
		return r, err
	}
	out, err := sb.Run(ctx, bin("ambit-echo"), "tcp", "--addr", addr, "--payload", "e2e", "--timeout", "3s")
	if jerr := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &r); jerr != nil {
		return r, fmt.Errorf("tcp echo to %s: %w (output %q, run error %v)", addr, jerr, out, err)
	}
	if !r.OK {
		return r, fmt.Errorf("tcp echo to %s failed: %s", addr, r.Error)
	}
	return r, nil
}

// bin is the path of an Ambit binary.
func bin(name string) string { return filepath.Join(os.Getenv("AMBIT_BIN"), name) }

// inboundMTLS is the destination-reported mTLS connection count of node's ztunnel.
func inboundMTLS(node string) (float64, error) {
	return mesh.InboundMTLS(env.Node(node).NetnsPath)
}

// ztunnelDump reads node's ztunnel config dump.
func ztunnelDump(node string) (*mesh.ConfigDump, error) {
	return mesh.ReadConfigDump(env.Node(node).NetnsPath)
}

// podAddr is ip:port of a pod.
func podAddr(p *corev1.Pod, port uint16) string {
	return netip.AddrPortFrom(netip.MustParseAddr(p.Status.PodIP), port).String()
}

// served waits until node's ztunnel serves want pods of namespace ns in-pod.
func served(ctx context.Context, node, ns string, want int) error {
	return testbed.Poll(ctx, fmt.Sprintf("%d pods of %s served by ztunnel on %s", want, ns, node), func(context.Context) (bool, error) {
		d, err := ztunnelDump(node)
		if err != nil {
			return false, err
		}
		n := 0
		for _, w := range d.InpodWorkloads {
			if w.Namespace == ns {
				n++
			}
		}
		return n == want, fmt.Errorf("serving %d", n)
	})
}
