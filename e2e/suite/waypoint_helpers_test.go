package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ambitmesh/ambit/e2e/echo"
)

// versionedEcho runs an echo pod "<app>-<version>" labelled app and version, with the
// service account app, on node.
func versionedEcho(ctx context.Context, t *testing.T, ns, app, version, node string) *corev1.Pod {
	t.Helper()
	name := app + "-" + version
	pod := echoPod(ns, name, node, []string{"server", "--name", name, "--http", ":8080", "--tcp", ":9000"})
	pod.Labels = map[string]string{"app": app, "version": version}
	pod.Spec.ServiceAccountName = app
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}}
	return runPod(ctx, t, pod)
}

// httpService creates a Service name (port 80 "http" to 8080) selecting selector and
// returns its cluster IP.
func httpService(ctx context.Context, t *testing.T, ns, name string, selector map[string]string) string {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
		}},
	}
	got, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Spec.ClusterIP
}

// labelService sets (value non-empty) or removes a label of a Service.
func labelService(ctx context.Context, t *testing.T, ns, name, key, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = strconv.Quote(value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, key, v)
	if _, err := env.Client.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// httpFrom sends count keep-alive requests from the pod to url (extra are ambit-echo
// http flags, e.g. "--header", "K: V") and returns one result per request.
func httpFrom(ctx context.Context, from *corev1.Pod, url string, count int, extra ...string) ([]echo.HTTPResult, error) {
	sb, err := env.Sandbox(from.Namespace, from.Name)
	if err != nil {
		return nil, err
	}
	args := append([]string{"http", "--url", url, "--count", strconv.Itoa(count), "--keepalive", "--timeout", "5s"}, extra...)
	out, runErr := sb.Run(ctx, append([]string{bin("ambit-echo")}, args...)...)
	var res []echo.HTTPResult
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var r echo.HTTPResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("http from %s to %s: %w (line %q, run error %v)", from.Name, url, err, line, runErr)
		}
		res = append(res, r)
	}
	if len(res) != count {
		return res, fmt.Errorf("http from %s to %s: %d results of %d (run error %v, output %q)", from.Name, url, len(res), count, runErr, out)
	}
	return res, nil
}

// tally counts results by answering pod and by status.
func tally(res []echo.HTTPResult) (pods map[string]int, statuses map[int]int) {
	pods, statuses = map[string]int{}, map[int]int{}
	for _, r := range res {
		if r.Status/100 == 2 {
			pods[r.Pod]++
		}
		statuses[r.Status]++
	}
	return pods, statuses
}

// viaWaypoint reports whether a reply went through a waypoint: the waypoint gives every
// request an x-request-id (the client sends none).
func viaWaypoint(r echo.HTTPResult) bool { return r.Headers["x-request-id"] != "" }
