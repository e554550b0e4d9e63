package kubelet

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/charts"
	"github.com/ambitmesh/ambit/e2e/cluster"
)

// imageBinDir is where the images' binaries live; Config.BinDir stands for it.
const imageBinDir = "/usr/local/bin"

// container is one running container: its process, restarted per the pod's policy.
type container struct {
	name     string
	argv     []string
	logPath  string
	mu       sync.Mutex
	proc     *cluster.Process
	restarts int32
	started  time.Time
	ready    bool
	held     chan struct{} // non-nil while HoldContainer keeps it down; closed on release
}

// argv builds the container's command line: env -i with the container environment,
// the binary for its image or command, and its args, with $(VAR) references expanded
// and mount paths translated to host directories.
func (k *Kubelet) argv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, mounts []mount, kubeconfig string) ([]string, error) {
	env, err := k.env(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	env["KUBECONFIG"] = kubeconfig
	mounts = append(mounts, mount{imageBinDir, k.cfg.BinDir})
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].path) > len(mounts[j].path) })

	cmd := append([]string(nil), c.Command...)
	if len(cmd) == 0 {
		name := path.Base(c.Image)
		if i := strings.IndexAny(name, ":@"); i >= 0 {
			name = name[:i]
		}
		cmd = []string{filepath.Join(imageBinDir, name)}
	}
	cmd = append(cmd, c.Args...)
	for i, a := range cmd {
		cmd[i] = translate(expand(a, env), mounts)
	}
	keys := make([]string, 0, len(env))
	for key := range env {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	out := []string{"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, key := range keys {
		out = append(out, key+"="+translate(env[key], mounts))
	}
	return append(out, cmd...), nil
}

// env resolves the container's environment (values, field references, ConfigMap and
// Secret keys) plus the service variables every kubelet adds.
func (k *Kubelet) env(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (map[string]string, error) {
	env := map[string]string{"HOSTNAME": pod.Name}
	for _, e := range c.Env {
		v := expand(e.Value, env)
		if src := e.ValueFrom; src != nil {
			var err error
			switch {
			case src.FieldRef != nil:
				v, err = fieldValue(pod, src.FieldRef.FieldPath)
			case src.ConfigMapKeyRef != nil:
				cm, gerr := k.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
				if err = gerr; err == nil {
					v = cm.Data[src.ConfigMapKeyRef.Key]
				}
			case src.SecretKeyRef != nil:
				s, gerr := k.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
				if err = gerr; err == nil {
					v = string(s.Data[src.SecretKeyRef.Key])
				}
			case src.ResourceFieldRef != nil:
				v = "0"
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		env[e.Name] = v
	}
	return env, nil
}

// fieldValue resolves a downward-API field path of the pod.
func fieldValue(pod *corev1.Pod, field string) (string, error) {
	switch field {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	if key, ok := strings.CutPrefix(field, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(key, "']")], nil
	}
	if key, ok := strings.CutPrefix(field, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(key, "']")], nil
	}
	return "", fmt.Errorf("unsupported field path %q", field)
}

// expand replaces $(VAR) references with env's values by the kubelet's rules.
func expand(s string, env map[string]string) string {
	return charts.Expand(s, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
}
