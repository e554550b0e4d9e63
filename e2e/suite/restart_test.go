package suite

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/mesh"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

// systemPod returns the running pod of an Ambit component (label selector) on node
// ("" for any node).
func systemPod(ctx context.Context, selector, node string) (*corev1.Pod, error) {
	l, err := env.Client.CoreV1().Pods(testbed.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	for i, p := range l.Items {
		if (node == "" || p.Spec.NodeName == node) && p.DeletionTimestamp == nil {
			return &l.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no pod %s on %q", selector, node)
}

// restartCount is the restart count of the pod's first container.
func restartCount(ctx context.Context, p *corev1.Pod) (int32, error) {
	cur, err := env.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil || len(cur.Status.ContainerStatuses) == 0 {
		return 0, fmt.Errorf("pod status: %v", err)
	}
	return cur.Status.ContainerStatuses[0].RestartCount, nil
}

// killAndWaitRestart kills the component container on its node and waits until the
// kubelet reports it restarted and ready.
func killAndWaitRestart(ctx context.Context, t *testing.T, p *corev1.Pod, container string) {
	t.Helper()
	before, err := restartCount(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Node(p.Spec.NodeName).Kubelet.KillContainer(p.Namespace, p.Name, container); err != nil {
		t.Fatal(err)
	}
	err = testbed.Poll(ctx, p.Name+" restarted", func(ctx context.Context) (bool, error) {
		n, err := restartCount(ctx, p)
		return n > before, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.WaitPodReady(ctx, p.Namespace, p.Name); err != nil {
		t.Fatal(err)
	}
}

// TestE2EZtunnelRestartMidTraffic kills the client node's ztunnel while a connection
// loop runs (F-ENROL-4): the kubelet restarts it, the node agent replays its pods, and
// the loop's connections are mTLS again.
func TestE2EZtunnelRestartMidTraffic(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const ns = "e2e-zt-restart"
	newNamespace(ctx, t, ns, true)
	server := echoServer(ctx, t, ns, "server", "node-b")
	client := sleeper(ctx, t, ns, "client", "node-a")
	if err := served(ctx, "node-a", ns, 1); err != nil {
		t.Fatal(err)
	}
	l := startLoop(ctx, client, podAddr(server, 9000))
	defer l.close()
	if err := waitMTLS(ctx, l, "node-b", true); err != nil {
		t.Fatal(err)
	}
	zt, err := systemPod(ctx, "app=ztunnel", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	killAndWaitRestart(ctx, t, zt, "ztunnel")
	if err := served(ctx, "node-a", ns, 1); err != nil {
		t.Fatal(err)
	}
	if err := waitMTLS(ctx, l, "node-b", true); err != nil {
		t.Fatal(err)
	}
	ok, fail, last := l.counts()
	t.Logf("%d exchanges ok, %d failed across the restart (last error: %v)", ok, fail, last)
}

// xdsCounters is what a ztunnel's xDS client has received so far.
type xdsCounters struct{ streams, received, removed float64 }

func readXDSCounters(node string) (xdsCounters, error) {
	text, err := mesh.ReadMetrics(env.Node(node).NetnsPath)
	if err != nil {
		return xdsCounters{}, err
	}
	var c xdsCounters
	var errs [3]error
	c.streams, errs[0] = mesh.MetricSum(text, "ambit_xds_streams_total", nil)
	c.received, errs[1] = mesh.MetricSum(text, "ambit_xds_resources_received_total", nil)
	c.removed, errs[2] = mesh.MetricSum(text, "ambit_xds_resources_removed_total", nil)
	for _, e := range errs {
		if e != nil {
			return c, e
		}
	}
	return c, nil
}

// TestE2EIstiodRestartNoFullResend restarts istiod-lite (F-CP-2): both ztunnels
// reconnect reporting the versions they hold, and get at most the few resources that
// really changed (istiod-lite's own workload while it restarts), never the whole state.
func TestE2EIstiodRestartNoFullResend(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const ns = "e2e-cp-restart"
	newNamespace(ctx, t, ns, true)
	server := echoServer(ctx, t, ns, "server", "node-b")
	client := sleeper(ctx, t, ns, "client", "node-a")
	if err := served(ctx, "node-a", ns, 1); err != nil {
		t.Fatal(err)
	}
	// Earlier tests' namespaces still being deleted would change WDS during the restart.
	if err := testbed.Poll(ctx, "no terminating namespaces", func(ctx context.Context) (bool, error) {
		l, err := env.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, n := range l.Items {
			if n.DeletionTimestamp != nil {
				return false, fmt.Errorf("%s terminating", n.Name)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	nodes := []string{"node-a", "node-b"}
	before := map[string]xdsCounters{}
	held := map[string]int{}
	for _, n := range nodes {
		c, err := readXDSCounters(n)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = c
		d, err := ztunnelDump(n)
		if err != nil {
			t.Fatal(err)
		}
		held[n] = len(d.Workloads) + len(d.Services) + len(d.Policies)
	}
	istiod, err := systemPod(ctx, "app=istiod", "")
	if err != nil {
		t.Fatal(err)
	}
	killAndWaitRestart(ctx, t, istiod, "istiod-lite")
	for _, n := range nodes {
		err := testbed.Poll(ctx, n+" ztunnel reconnected", func(context.Context) (bool, error) {
			c, err := readXDSCounters(n)
			return err == nil && c.streams > before[n].streams, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Traffic still works through the reconnected control plane.
	if _, err := tcpEcho(ctx, client, podAddr(server, 9000)); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		c, err := readXDSCounters(n)
		if err != nil {
			t.Fatal(err)
		}
		resent, removed := c.received-before[n].received, c.removed-before[n].removed
		t.Logf("%s: %d resources held, %v received and %v removed across the restart", n, held[n], resent, removed)
		if held[n] < 5 || resent > 2 || removed > 0 {
			t.Errorf("%s: reconnect resent %v of %d resources and removed %v (want ≤ 2 changed, none removed)", n, resent, held[n], removed)
		}
	}
}
