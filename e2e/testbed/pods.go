package testbed

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// Poll calls cond every 100 ms until it returns true, ctx ends (an error naming what
// was awaited and cond's last error), or cond's error is permanent (never: errors are
// retried).
func Poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// WaitPodReady waits until the pod's Ready condition is true and returns the pod.
func (tb *Testbed) WaitPodReady(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := Poll(ctx, "pod "+namespace+"/"+name+" ready", func(ctx context.Context) (bool, error) {
		p, err := tb.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if podReady(p) {
			pod = p
			return true, nil
		}
		return false, fmt.Errorf("phase %s, conditions %v", p.Status.Phase, p.Status.Conditions)
	})
	return pod, err
}

// WaitPodGone waits until the pod object no longer exists.
func (tb *Testbed) WaitPodGone(ctx context.Context, namespace, name string) error {
	return Poll(ctx, "pod "+namespace+"/"+name+" gone", func(ctx context.Context) (bool, error) {
		_, err := tb.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

// Sandbox returns the running sandbox of a pod (to run commands in it as the pod), or
// an error when no kubelet runs it.
func (tb *Testbed) Sandbox(namespace, name string) (*cluster.Pod, error) {
	for _, n := range tb.Nodes {
		if p := n.Kubelet.Pod(namespace, name); p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s is not running on any node", namespace, name)
}

// Node returns the named node, or nil.
func (tb *Testbed) Node(name string) *Node {
	for _, n := range tb.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
