package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// podRuntime is what the kubelet runs for one pod.
type podRuntime struct {
	k          *Kubelet
	pod        *corev1.Pod // as first seen
	sandbox    *cluster.Pod
	net        *network
	ip         netip.Addr
	containers []*container
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// sync brings one pod (key "ns/name") to its wanted state.
func (k *Kubelet) sync(ctx context.Context, lister corelisters.PodLister, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		pod = nil
	} else if err != nil {
		return err
	}
	k.mu.Lock()
	rt := k.pods[key]
	k.mu.Unlock()
	if rt != nil && (pod == nil || pod.UID != rt.pod.UID || pod.DeletionTimestamp != nil) {
		if err := rt.teardown(ctx); err != nil {
			return err
		}
		k.mu.Lock()
		delete(k.pods, key)
		k.mu.Unlock()
		rt = nil
	}
	switch {
	case pod == nil:
		return nil
	case pod.DeletionTimestamp != nil:
		// The containers are gone: finish the deletion, as the kubelet does.
		err := k.cfg.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s: %w", key, err)
		}
		return nil
	case rt != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return nil
	}
	rt, err = k.startPod(ctx, pod.DeepCopy())
	if err != nil {
		return fmt.Errorf("start pod %s: %w", key, err)
	}
	k.mu.Lock()
	k.pods[key] = rt
	k.mu.Unlock()
	return nil
}

// startPod creates the sandbox and network, realises volumes, starts the containers
// and reports the pod running. On error everything made is removed again.
func (k *Kubelet) startPod(ctx context.Context, pod *corev1.Pod) (_ *podRuntime, err error) {
	rt := &podRuntime{k: k, pod: pod}
	defer func() {
		if err != nil {
			err = errors.Join(err, rt.teardown(ctx))
		}
	}()
	if pod.Spec.HostNetwork {
		rt.ip = k.cfg.Node.IP
	} else {
		if rt.sandbox, err = k.cfg.Node.AddSandbox(pod.Namespace, pod.Name, string(pod.UID)); err != nil {
			return rt, err
		}
		if rt.net, rt.ip, err = k.setUpNetwork(ctx, rt.sandbox); err != nil {
			return rt, err
		}
		rt.sandbox.SetIP(rt.ip)
	}
	pod.Status.PodIP, pod.Status.HostIP = rt.ip.String(), k.cfg.Node.IP.String()
	podDir := filepath.Join(k.cfg.Root, "var/lib/kubelet/pods", string(pod.UID))
	vols, err := k.volumes(ctx, pod, podDir)
	if err != nil {
		return rt, err
	}
	kubeconfig := filepath.Join(podDir, "kubeconfig")
	if err := k.writeKubeconfig(ctx, pod, kubeconfig); err != nil {
		return rt, err
	}
	for _, c := range pod.Spec.Containers {
		var mounts []mount
		for _, m := range c.VolumeMounts {
			if host, ok := vols[m.Name]; ok {
				mounts = append(mounts, mount{filepath.Clean(m.MountPath), filepath.Join(host, m.SubPath)})
			}
		}
		argv, err := k.argv(ctx, pod, &c, mounts, kubeconfig)
		if err != nil {
			return rt, fmt.Errorf("container %s: %w", c.Name, err)
		}
		rt.containers = append(rt.containers, &container{
			name: c.Name, argv: argv,
			logPath: filepath.Join(k.cfg.LogDir, pod.Namespace+"_"+pod.Name+"_"+c.Name+".log"),
		})
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rt.cancel = cancel
	for i, c := range rt.containers {
		spec := &pod.Spec.Containers[i]
		rt.wg.Go(func() { rt.runContainer(runCtx, c, spec) })
	}
	rt.wg.Go(func() { rt.reportStatus(runCtx) })
	k.log.Info("pod started", "pod", pod.Namespace+"/"+pod.Name, "ip", rt.ip)
	return rt, nil
}

// runContainer runs c until ctx ends, restarting it (1 s, doubling to 10 s) when it
// exits unless the pod's restart policy is Never.
func (rt *podRuntime) runContainer(ctx context.Context, c *container, spec *corev1.Container) {
	backoff := time.Second
	for ctx.Err() == nil {
		c.mu.Lock()
		held := c.held
		c.mu.Unlock()
		if held != nil {
			select {
			case <-ctx.Done():
				return
			case <-held:
			}
		}
		var p *cluster.Process
		var err error
		if rt.sandbox != nil {
			p, err = rt.sandbox.Start(ctx, c.logPath, c.argv...)
		} else {
			p, err = rt.k.cfg.Node.Start(ctx, c.logPath, c.argv...)
		}
		if err == nil {
			c.mu.Lock()
			c.proc, c.started, c.ready = p, time.Now(), spec.ReadinessProbe == nil
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				_ = p.Stop()
				return
			case <-p.Done():
			}
			rt.k.log.Warn("container exited", "pod", rt.pod.Namespace+"/"+rt.pod.Name, "container", c.name, "err", p.Err())
			c.mu.Lock()
			c.proc, c.ready = nil, false
			c.restarts++
			c.mu.Unlock()
		} else {
			rt.k.log.Warn("start container", "pod", rt.pod.Name, "container", c.name, "err", err)
		}
		if rt.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// stopContainers ends the containers and waits for their goroutines.
func (rt *podRuntime) stopContainers() {
	if rt.cancel != nil {
		rt.cancel()
	}
	rt.wg.Wait()
}

// teardown stops the containers, runs CNI DEL and removes the sandbox.
func (rt *podRuntime) teardown(ctx context.Context) error {
	rt.stopContainers()
	var errs []error
	if rt.sandbox != nil {
		errs = append(errs, rt.k.tearDown(ctx, rt.net), rt.sandbox.Remove())
	}
	errs = append(errs, os.RemoveAll(filepath.Join(rt.k.cfg.Root, "var/lib/kubelet/pods", string(rt.pod.UID))))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down pod %s/%s: %w", rt.pod.Namespace, rt.pod.Name, err)
	}
	rt.k.log.Info("pod removed", "pod", rt.pod.Namespace+"/"+rt.pod.Name)
	return nil
}
