package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
	"github.com/ambitmesh/ambit/cni/redirect"
	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/pkg/inpod/inpodtest"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/pkg/zds"
)

// TestPrivilegedKubeModeWiring runs the agent binary's run() in Kubernetes mode against a
// real API server (AMBIT_KUBE_BIN, see e2e/kube): it chains the plugin into the CNI
// config and copies the binary, enrols a pod whose namespace is labelled in the API,
// annotates it once ztunnel acknowledges, and on shutdown takes the plugin out again.
func TestPrivilegedKubeModeWiring(t *testing.T) {
	inpodtest.RequireRoot(t)
	bin := os.Getenv("AMBIT_KUBE_BIN")
	if bin == "" {
		t.Skip("AMBIT_KUBE_BIN is not set: run `make kube-tools` and point it at the output directory")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c, err := kube.Start(ctx, kube.Options{BinDir: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cs, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeAmbient}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var web *corev1.Pod
	waitFor(t, func() bool { // the default service account appears shortly after the namespace
		web, err = cs.CoreV1().Pods("apps").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps"},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "a", Image: "a"}}},
		}, metav1.CreateOptions{})
		return err == nil
	})
	uid := string(web.UID)
	pod, cgRoot, pinDir := newPrivPod(t, uid)
	mgr := &redirect.Manager{PinDir: pinDir}
	t.Cleanup(func() { _ = mgr.Unenrol(uid) })

	dir, err := os.MkdirTemp("", "agentk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	confDir, binDir, plugin := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin"), filepath.Join(dir, "plugin")
	cniSock, zdsSock := filepath.Join(dir, "cni.sock"), filepath.Join(dir, "zds.sock")
	const bridge = `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"bridge","bridge":"cni0"}]}`
	for path, data := range map[string]string{filepath.Join(confDir, "10-bridge.conflist"): bridge, plugin: "plugin-binary"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(actx, []string{"--node-name", "node-a", "--kubeconfig", c.Kubeconfig,
			"--zds-socket", zdsSock, "--cni-socket", cniSock, "--bpf-pin-dir", pinDir, "--cgroup-root", cgRoot,
			"--state-dir", filepath.Join(dir, "state"), "--probe-sources", "10.250.0.1",
			"--cni-conf-dir", confDir, "--cni-bin-dir", binDir, "--cni-plugin-path", plugin})
	}()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, func() bool {
		types, sock := pluginEntries(t, filepath.Join(confDir, "10-bridge.conflist"))
		return slices.Equal(types, []string{"bridge", "ambit-cni"}) && sock == cniSock
	})
	if b, err := os.ReadFile(filepath.Join(binDir, "ambit-cni")); err != nil || string(b) != "plugin-binary" {
		t.Fatalf("plugin binary: %q, %v", b, err)
	}

	add := podapi.AddRequest{UID: uid, Name: "web", Namespace: "apps", Netns: pod.Path, IPs: []string{"10.250.0.2"}, ContainerID: "s1"}
	if err := podapi.NewClient(cniSock, 30*time.Second).Add(ctx, add); err != nil {
		t.Fatalf("add: %v", err)
	}
	if got, _ := mgr.Enrolled(); !slices.Equal(got, []string{uid}) {
		t.Fatalf("pins = %v", got)
	}
	zt := &mapZtunnel{types: map[string]ebpf.MapType{}}
	zctx, zstop := context.WithCancel(ctx)
	zdone := make(chan error, 1)
	go func() {
		zdone <- (&zds.Client{Path: zdsSock, Handler: zt, MinBackoff: 10 * time.Millisecond}).Run(zctx)
	}()
	t.Cleanup(func() { zstop(); <-zdone })
	waitFor(t, func() bool {
		p, err := cs.CoreV1().Pods("apps").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Annotations[wire.AnnotationRedirection] == wire.RedirectionEnabled
	})

	stop()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
	done <- nil // for the cleanup
	if types, _ := pluginEntries(t, filepath.Join(confDir, "10-bridge.conflist")); !slices.Equal(types, []string{"bridge"}) {
		t.Fatalf("after shutdown plugins = %v", types)
	}
	if _, err := os.Stat(filepath.Join(binDir, "ambit-cni")); !os.IsNotExist(err) {
		t.Fatalf("plugin binary left: %v", err)
	}
}

// pluginEntries returns a conflist's plugin types and the ambit-cni entry's socket.
func pluginEntries(t *testing.T, path string) (types []string, sock string) {
	t.Helper()
	var list struct {
		Plugins []struct {
			Type        string `json:"type"`
			AgentSocket string `json:"agentSocket"`
		} `json:"plugins"`
	}
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &list) != nil {
		return nil, ""
	}
	for _, p := range list.Plugins {
		types = append(types, p.Type)
		if p.Type == "ambit-cni" {
			sock = p.AgentSocket
		}
	}
	return types, sock
}
