package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

// loop makes TCP echo exchanges from a client pod to addr back to back until stopped,
// counting successes and failures.
type loop struct {
	mu       sync.Mutex
	ok, fail int
	lastErr  error
	stop     context.CancelFunc
	done     chan struct{}
}

func startLoop(ctx context.Context, from *corev1.Pod, addr string) *loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &loop{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			_, err := tcpEcho(ctx, from, addr)
			l.mu.Lock()
			if err == nil {
				l.ok++
			} else if ctx.Err() == nil {
				l.fail++
				l.lastErr = err
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *loop) counts() (ok, fail int, last error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.fail, l.lastErr
}

func (l *loop) close() {
	l.stop()
	<-l.done
}

// waitMTLS waits until the connections the loop makes are (or are not) counted as mTLS
// by the server node's ztunnel, while the loop keeps succeeding.
func waitMTLS(ctx context.Context, l *loop, node string, mtls bool) error {
	return testbed.Poll(ctx, fmt.Sprintf("loop connections mTLS=%v", mtls), func(ctx context.Context) (bool, error) {
		before, err := inboundMTLS(node)
		if err != nil {
			return false, err
		}
		okBefore, _, _ := l.counts()
		for {
			ok, _, last := l.counts()
			if ok >= okBefore+3 {
				break
			}
			select {
			case <-ctx.Done():
				return false, fmt.Errorf("loop stalled: %v", last)
			case <-time.After(50 * time.Millisecond):
			}
		}
		after, err := inboundMTLS(node)
		if err != nil {
			return false, err
		}
		return (after > before) == mtls, fmt.Errorf("mTLS count %v → %v", before, after)
	})
}

// TestE2ENamespaceLabelToggle labels and unlabels a namespace while a connection loop
// runs between two of its pods on different nodes (F-ENROL-1): connections switch
// between plaintext and HBONE, and no pod restarts.
func TestE2ENamespaceLabelToggle(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const ns = "e2e-toggle"
	newNamespace(ctx, t, ns, false)
	server := echoServer(ctx, t, ns, "server", "node-b")
	client := sleeper(ctx, t, ns, "client", "node-a")
	l := startLoop(ctx, client, podAddr(server, 9000))
	defer l.close()

	steps := []struct {
		ambient bool
		served  int
	}{{false, 0}, {true, 1}, {false, 0}, {true, 1}}
	for i, s := range steps {
		if i > 0 {
			setAmbient(ctx, t, ns, s.ambient)
		}
		for _, node := range []string{"node-a", "node-b"} {
			if err := served(ctx, node, ns, s.served); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if err := waitMTLS(ctx, l, "node-b", s.ambient); err != nil {
			t.Fatalf("step %d (ambient=%v): %v", i, s.ambient, err)
		}
		ok, fail, last := l.counts()
		t.Logf("step %d ambient=%v: %d exchanges ok, %d failed (last error %v)", i, s.ambient, ok, fail, last)
	}
	l.close()
	// An exchange in flight through ztunnel at the moment its pod leaves the mesh is cut
	// (ztunnel does not drain a removed pod's connections yet); at most one per switch.
	if ok, fail, last := l.counts(); fail > len(steps)-1 {
		t.Errorf("%d of %d exchanges failed while relabelling %d times; last: %v", fail, ok+fail, len(steps)-1, last)
	}
	for _, name := range []string{"server", "client"} {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.UID != map[string]*corev1.Pod{"server": server, "client": client}[name].UID || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("pod %s was restarted or replaced", name)
		}
	}
}

// TestE2EEnrolledBeforeFirstPacket starts a pod in an ambient namespace whose only
// container connects at once to a STRICT server (F-ENROL-2): the first connection is
// already HBONE, because the CNI plugin enrols the pod before its containers start.
func TestE2EEnrolledBeforeFirstPacket(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const ns = "e2e-first-packet"
	newNamespace(ctx, t, ns, true)
	applyYAML(ctx, t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: `+ns+`}
spec: {mtls: {mode: STRICT}}`)
	server := echoServer(ctx, t, ns, "server", "node-b")
	if err := waitPolicy(ctx, "node-b", "istio-system/istio_converted_static_strict"); err != nil {
		t.Fatal(err)
	}

	pod := echoPod(ns, "first", "node-a", []string{"tcp", "--addr", podAddr(server, 9000), "--payload", "first-packet", "--timeout", "5s"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "first"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(logDir, "pods", ns+"_first_app.log")
	var r echo.TCPResult
	err := testbed.Poll(ctx, "first pod's exchange", func(context.Context) (bool, error) {
		b, err := os.ReadFile(logFile)
		if err != nil {
			return false, err
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		return json.Unmarshal([]byte(line), &r) == nil && (r.OK || r.Error != ""), fmt.Errorf("log %q", b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("the pod's first connection failed (not redirected into the mesh before it started?): %s", r.Error)
	}
}
