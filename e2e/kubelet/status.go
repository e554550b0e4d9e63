package kubelet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// reportStatus probes readiness every second and writes the pod status whenever what
// it reports changes, until ctx ends.
func (rt *podRuntime) reportStatus(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last string
	for {
		for i, c := range rt.containers {
			rt.probe(ctx, c, &rt.pod.Spec.Containers[i])
		}
		status := rt.status()
		if key := statusKey(status); key != last {
			if err := rt.writeStatus(ctx, status); err != nil {
				if ctx.Err() == nil {
					rt.k.log.Warn("write pod status", "pod", rt.pod.Namespace+"/"+rt.pod.Name, "err", err)
				}
			} else {
				last = key
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe runs the container's readiness probe (HTTP GET or TCP connect from the node,
// as the kubelet probes) once the initial delay has passed; exec probes count as ready.
func (rt *podRuntime) probe(ctx context.Context, c *container, spec *corev1.Container) {
	p := spec.ReadinessProbe
	c.mu.Lock()
	running, started := c.proc != nil, c.started
	c.mu.Unlock()
	if p == nil || !running || time.Since(started) < time.Duration(p.InitialDelaySeconds)*time.Second {
		return
	}
	ok := true
	switch {
	case p.HTTPGet != nil:
		ok = rt.probeHTTP(ctx, spec, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := portNumber(spec, p.TCPSocket.Port)
		if ok = err == nil; ok {
			conn, err := cluster.Dial(ctx, rt.k.cfg.Node.NetnsPath, "tcp", net.JoinHostPort(rt.ip.String(), strconv.Itoa(port)))
			if ok = err == nil; ok {
				conn.Close()
			}
		}
	}
	c.mu.Lock()
	c.ready = ok && c.proc != nil
	c.mu.Unlock()
}

func (rt *podRuntime) probeHTTP(ctx context.Context, spec *corev1.Container, g *corev1.HTTPGetAction) bool {
	port, err := portNumber(spec, g.Port)
	if err != nil {
		return false
	}
	host := rt.ip.String()
	if g.Host != "" {
		host = g.Host
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, strconv.Itoa(port))+g.Path, nil)
	if err != nil {
		return false
	}
	resp, err := cluster.HTTPClient(rt.k.cfg.Node.NetnsPath).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// portNumber resolves a probe port, numeric or named after a container port.
func portNumber(spec *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no port named %q", p.StrVal)
}

// status is the pod status the kubelet reports now.
func (rt *podRuntime) status() corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: rt.ip.String(), PodIPs: []corev1.PodIP{{IP: rt.ip.String()}},
		HostIP: rt.k.cfg.Node.IP.String(), HostIPs: []corev1.HostIP{{IP: rt.k.cfg.Node.IP.String()}},
		StartTime: &rt.pod.CreationTimestamp,
	}
	allReady := true
	for i, c := range rt.containers {
		c.mu.Lock()
		cs := corev1.ContainerStatus{
			Name: c.name, Image: rt.pod.Spec.Containers[i].Image, ImageID: rt.pod.Spec.Containers[i].Image,
			Ready: c.ready, RestartCount: c.restarts, Started: new(c.proc != nil),
		}
		if c.proc != nil {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.started.Truncate(time.Second))}
			cs.ContainerID = "ambit://" + strconv.Itoa(c.proc.Pid)
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		}
		allReady = allReady && c.ready
		c.mu.Unlock()
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	ready := corev1.ConditionFalse
	if allReady {
		ready = corev1.ConditionTrue
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized} {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: ready, LastTransitionTime: now})
	}
	return st
}

// statusKey is what makes two statuses differ for reporting: readiness, restarts and
// running containers, not timestamps.
func statusKey(st corev1.PodStatus) string {
	key := st.PodIP
	for _, c := range st.ContainerStatuses {
		key += fmt.Sprintf("|%s:%v:%d:%s", c.Name, c.Ready, c.RestartCount, c.ContainerID)
	}
	return key
}

// writeStatus replaces the pod's status, re-reading the pod on a conflict.
func (rt *podRuntime) writeStatus(ctx context.Context, st corev1.PodStatus) error {
	pods := rt.k.cfg.Client.CoreV1().Pods(rt.pod.Namespace)
	for attempt := 0; ; attempt++ {
		cur, err := pods.Get(ctx, rt.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != rt.pod.UID {
			return fmt.Errorf("pod was replaced")
		}
		st.QOSClass = cur.Status.QOSClass // set by the API server at creation, immutable
		cur.Status = st
		if _, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil || attempt == 3 {
			return err
		}
	}
}
