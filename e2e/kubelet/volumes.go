package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// mount is one container mount: the path the container names and the host directory
// (or file) that stands for it.
type mount struct{ path, host string }

// hostPathFor maps a hostPath volume path to its directory on this machine.
func (k *Kubelet) hostPathFor(p string) string {
	p = filepath.Clean(p)
	keys := make([]string, 0, len(k.cfg.HostPaths))
	for key := range k.cfg.HostPaths {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, key := range keys {
		if p == key || strings.HasPrefix(p, key+"/") {
			return filepath.Join(k.cfg.HostPaths[key], strings.TrimPrefix(p, key))
		}
	}
	return filepath.Join(k.cfg.Root, p)
}

// volumes realises every volume of the pod as a host directory and returns them by
// volume name. ConfigMaps and Secrets that do not exist yet (and are not optional) are
// an error, so the pod is retried, as a kubelet keeps it in ContainerCreating.
func (k *Kubelet) volumes(ctx context.Context, pod *corev1.Pod, podDir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", v.Name)
		var err error
		switch {
		case v.HostPath != nil:
			dir = k.hostPathFor(v.HostPath.Path)
			t := corev1.HostPathUnset
			if v.HostPath.Type != nil {
				t = *v.HostPath.Type
			}
			if t == corev1.HostPathUnset || t == corev1.HostPathDirectoryOrCreate || t == corev1.HostPathDirectory {
				err = os.MkdirAll(dir, 0o755)
			}
		case v.EmptyDir != nil:
			err = os.MkdirAll(dir, 0o755)
		case v.ConfigMap != nil:
			err = k.writeConfigMap(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, dir)
		case v.Secret != nil:
			err = k.writeSecret(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, dir)
		case v.DownwardAPI != nil:
			err = writeDownward(pod, v.DownwardAPI.Items, dir)
		case v.Projected != nil:
			err = k.writeProjected(ctx, pod, v.Projected, dir)
		default:
			err = fmt.Errorf("unsupported volume type")
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		out[v.Name] = dir
	}
	return out, nil
}

func (k *Kubelet) writeProjected(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, dir string) error {
	for _, src := range p.Sources {
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			t := src.ServiceAccountToken
			var tok string
			if tok, err = k.token(ctx, pod, t.Audience, t.ExpirationSeconds); err == nil {
				err = writeFile(filepath.Join(dir, t.Path), []byte(tok))
			}
		case src.ConfigMap != nil:
			err = k.writeConfigMap(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, dir)
		case src.Secret != nil:
			err = k.writeSecret(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, dir)
		case src.DownwardAPI != nil:
			err = writeDownward(pod, src.DownwardAPI.Items, dir)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// token requests a service-account token for the pod's account, bound to the pod
// (so the API server adds the pod and node names to it), as the kubelet does.
func (k *Kubelet) token(ctx context.Context, pod *corev1.Pod, audience string, expiry *int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: expiry,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	resp, err := k.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token for %s/%s: %w", pod.Namespace, sa, err)
	}
	return resp.Status.Token, nil
}

func (k *Kubelet) writeConfigMap(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	return writeSource(dir, items, optional, func() (map[string][]byte, error) {
		cm, err := k.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, err)
		}
		data := map[string][]byte{}
		for key, v := range cm.Data {
			data[key] = []byte(v)
		}
		for key, v := range cm.BinaryData {
			data[key] = v
		}
		return data, nil
	})
}

func (k *Kubelet) writeSecret(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	return writeSource(dir, items, optional, func() (map[string][]byte, error) {
		s, err := k.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
		}
		return s.Data, nil
	})
}

// writeSource writes the keys get returns into dir; when get fails and the source is
// optional, dir is left empty instead.
func writeSource(dir string, items []corev1.KeyToPath, optional *bool, get func() (map[string][]byte, error)) error {
	data, err := get()
	if err != nil {
		if optional != nil && *optional {
			return os.MkdirAll(dir, 0o755)
		}
		return err
	}
	return writeItems(data, items, dir)
}

// writeItems writes every key (or only items, under their paths) into dir.
func writeItems(data map[string][]byte, items []corev1.KeyToPath, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(items) == 0 {
		for key, v := range data {
			if err := writeFile(filepath.Join(dir, key), v); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q missing", it.Key)
		}
		if err := writeFile(filepath.Join(dir, it.Path), v); err != nil {
			return err
		}
	}
	return nil
}

func writeDownward(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, dir string) error {
	for _, it := range items {
		if it.FieldRef == nil {
			continue
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, it.Path), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces path atomically (temp file + rename), creating parent dirs.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeKubeconfig writes the kubeconfig a container uses in place of in-cluster
// configuration: the API server and a token of the pod's service account.
func (k *Kubelet) writeKubeconfig(ctx context.Context, pod *corev1.Pod, path string) error {
	tok, err := k.token(ctx, pod, "", nil)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: k.cfg.APIServer, CertificateAuthorityData: k.cfg.CAData}
	cfg.AuthInfos["pod"] = &clientcmdapi.AuthInfo{Token: tok}
	cfg.Contexts["pod"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "pod", Namespace: pod.Namespace}
	cfg.CurrentContext = "pod"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write pod kubeconfig: %w", err)
	}
	return nil
}

// translate rewrites every occurrence of a mount path in s (as a whole path or a path
// prefix, e.g. in "--flag=/var/run/x/sock") to its host directory, in one pass: at each
// position the longest matching mount wins (mounts must be sorted longest first), and
// replaced text is never looked at again (a host directory under another mount path,
// such as /tmp, stays as it is).
func translate(s string, mounts []mount) string {
	const sep = "=:, \"'"
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '/' && (i == 0 || strings.IndexByte(sep, s[i-1]) >= 0) {
			matched := false
			for _, m := range mounts {
				end := i + len(m.path)
				if strings.HasPrefix(s[i:], m.path) && (end == len(s) || s[end] == '/' || strings.IndexByte(sep, s[end]) >= 0) {
					b.WriteString(m.host)
					i, matched = end, true
					break
				}
			}
			if matched {
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
