package charts

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// appVersion reads appVersion from a chart's Chart.yaml.
func appVersion(t *testing.T, chart string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartsDir, chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	return meta.AppVersion
}

func container(t *testing.T, objs []unstructured.Unstructured, kind, name, c string) *corev1.Container {
	t.Helper()
	ctr, err := Container(objs, kind, name, c)
	if err != nil {
		t.Fatal(err)
	}
	return ctr
}

func podSpec(t *testing.T, objs []unstructured.Unstructured, kind, name string) *corev1.PodSpec {
	t.Helper()
	spec, err := PodSpec(objs, kind, name)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// mountPath returns the mount path of volume in c, or "".
func mountPath(c *corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func volume(t *testing.T, spec *corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

func TestRenderDefaults(t *testing.T) {
	helm := helmBinary(t)
	for _, chart := range []string{"base", "istiod-lite", "ztunnel", "cni"} {
		t.Run(chart, func(t *testing.T) {
			golden(t, chart+"-default", render(t, helm, chart, nil))
		})
	}
}

func TestIstiodLiteDefaults(t *testing.T) {
	objs := render(t, helmBinary(t), "istiod-lite", nil)
	c := container(t, objs, "Deployment", "istiod-lite", "istiod-lite")
	if want := "ghcr.io/ambitmesh/istiod-lite:" + appVersion(t, "istiod-lite"); c.Image != want {
		t.Errorf("image %q, want %q", c.Image, want)
	}
	args := ExpandArgs(c, nil)
	wantArgs(t, args, "--system-namespace=istio-system", "--trust-domain=cluster.local", "--cluster-id=Kubernetes",
		"--grpc-addr=:15012", "--monitoring-addr=:15014", "--log-level=info",
		"--trusted-node-accounts=istio-system/ztunnel", "--ca-secret=istio-ca-secret",
		"--tls-dns-names=istiod.istio-system.svc,istiod-lite.istio-system.svc")
	noFlag(t, args, "kubeconfig")
	noFlag(t, args, "grpc-plaintext-addr")
	noFlag(t, args, "config-dir")
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.StrVal != "monitoring" {
		t.Errorf("readiness probe %+v, want GET /ready on port monitoring", p)
	}
	if got := containerPort(c, "monitoring"); got != 15014 {
		t.Errorf("monitoring port %d, want 15014", got)
	}
	if spec := podSpec(t, objs, "Deployment", "istiod-lite"); spec.ServiceAccountName != "istiod" {
		t.Errorf("service account %q, want istiod", spec.ServiceAccountName)
	}
	if got, want := servicePorts(t, objs, "istiod"), []int64{15012, 15014}; !slices.Equal(got, want) {
		t.Errorf("Service istiod ports %v, want %v", got, want)
	}
	wantRule(t, objs, "ClusterRole", "istiod-lite-istio-system", "authentication.k8s.io", "tokenreviews", "create")
	wantRule(t, objs, "ClusterRole", "istiod-lite-istio-system", "", "configmaps", "update")
	wantRule(t, objs, "ClusterRole", "istiod-lite-istio-system", "discovery.k8s.io", "endpointslices", "watch")
	wantRule(t, objs, "ClusterRole", "istiod-lite-istio-system", "security.istio.io", "authorizationpolicies", "watch")
	wantRule(t, objs, "Role", "istiod-lite", "", "secrets", "create")
}

func TestZtunnelDefaults(t *testing.T) {
	objs := render(t, helmBinary(t), "ztunnel", nil)
	c := container(t, objs, "DaemonSet", "ztunnel", "ztunnel")
	args := ExpandArgs(c, map[string]string{"NODE_NAME": "node-a"})
	wantArgs(t, args, "--node-name=node-a", "--xds-address=istiod.istio-system.svc:15012",
		"--xds-server-name=istiod.istio-system.svc", "--root-cert=/var/run/secrets/istio/root-cert.pem",
		"--token-file=/var/run/secrets/tokens/istio-token", "--cluster-id=Kubernetes", "--trust-domain=cluster.local",
		"--zds-socket=/var/run/ztunnel/ztunnel.sock", "--admin-addr=127.0.0.1:15000", "--metrics-addr=:15020",
		"--readiness-addr=:15021", "--log-level=info")
	noFlag(t, args, "ca-address")
	spec := podSpec(t, objs, "DaemonSet", "ztunnel")
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet || spec.ServiceAccountName != "ztunnel" {
		t.Errorf("hostNetwork %v, dnsPolicy %q, serviceAccount %q; want true, ClusterFirstWithHostNet, ztunnel", spec.HostNetwork, spec.DNSPolicy, spec.ServiceAccountName)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz/ready" || containerPort(c, p.HTTPGet.Port.StrVal) != 15021 {
		t.Errorf("readiness probe %+v, want GET /healthz/ready on 15021", p)
	}
	caps := c.SecurityContext.Capabilities.Add
	for _, want := range []corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "NET_RAW"} {
		if !slices.Contains(caps, want) {
			t.Errorf("capabilities %v lack %s", caps, want)
		}
	}
	token := volume(t, spec, "istio-token").Projected.Sources[0].ServiceAccountToken
	if token.Audience != "istio-ca" || token.ExpirationSeconds == nil || *token.ExpirationSeconds != 43200 || token.Path != "istio-token" {
		t.Errorf("projected token %+v, want audience istio-ca, 43200s, path istio-token", token)
	}
	if cm := volume(t, spec, "istiod-ca-cert").ConfigMap; cm.Name != "istio-ca-root-cert" || cm.Items[0].Key != "root-cert.pem" {
		t.Errorf("root cert ConfigMap %+v, want istio-ca-root-cert key root-cert.pem", cm)
	}
}

func TestCNIDefaults(t *testing.T) {
	objs := render(t, helmBinary(t), "cni", nil)
	c := container(t, objs, "DaemonSet", "ambit-cni-node", "ambit-cni-agent")
	args := ExpandArgs(c, map[string]string{"NODE_NAME": "node-b"})
	wantArgs(t, args, "--node-name=node-b", "--install-cni=true", "--cni-conf-dir=/host/etc/cni/net.d",
		"--cni-bin-dir=/host/opt/cni/bin", "--cni-plugin-path=/usr/local/bin/ambit-cni",
		"--zds-socket=/var/run/ztunnel/ztunnel.sock", "--cni-socket=/var/run/ambit/cni.sock",
		"--bpf-pin-dir=/sys/fs/bpf/ambit", "--cgroup-root=/host/sys/fs/cgroup", "--state-dir=/var/run/ambit/state",
		"--log-level=info")
	noFlag(t, args, "kubeconfig")
	noFlag(t, args, "config-dir")
	noFlag(t, args, "probe-sources")
	spec := podSpec(t, objs, "DaemonSet", "ambit-cni-node")
	if !spec.HostNetwork || spec.ServiceAccountName != "ambit-cni" {
		t.Errorf("hostNetwork %v, serviceAccount %q; want true, ambit-cni", spec.HostNetwork, spec.ServiceAccountName)
	}
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("security context %+v, want privileged", sc)
	}
	for vol, host := range map[string]string{"cni-conf": "/etc/cni/net.d", "cni-bin": "/opt/cni/bin", "zds": "/var/run/ztunnel", "cgroup": "/sys/fs/cgroup"} {
		if got := volume(t, spec, vol).HostPath; got == nil || got.Path != host {
			t.Errorf("volume %s hostPath %+v, want %s", vol, got, host)
		}
	}
	wantRule(t, objs, "ClusterRole", "ambit-cni-istio-system", "", "pods", "patch")
	wantRule(t, objs, "ClusterRole", "ambit-cni-istio-system", "", "namespaces", "watch")
}

func TestBaseDefaults(t *testing.T) {
	objs := render(t, helmBinary(t), "base", nil)
	wantRule(t, objs, "ClusterRole", "ambit-view", "security.istio.io", "authorizationpolicies", "list")
	wantRule(t, objs, "ClusterRole", "ambit-edit", "gateway.networking.k8s.io", "httproutes", "create")
	objs = render(t, helmBinary(t), "base", map[string]any{"rbac": map[string]any{"aggregate": false}})
	if len(objs) != 0 {
		t.Errorf("base with rbac.aggregate=false rendered %d objects, want none", len(objs))
	}
}

// TestHarnessValues renders the charts with the kind of values the e2e harness passes
// (node-local paths, fabric addresses, a kubeconfig) and checks that every such value
// reaches the flags and, where it is a path, the matching mount.
func TestHarnessValues(t *testing.T) {
	helm := helmBinary(t)
	env := map[string]string{"NODE_NAME": "node-a"}
	values := harnessValues()

	t.Run("istiod-lite", func(t *testing.T) {
		objs := render(t, helm, "istiod-lite", values["istiod-lite"])
		args := ExpandArgs(container(t, objs, "Deployment", "istiod-lite", "istiod-lite"), env)
		wantArgs(t, args, "--kubeconfig=/tmp/e2e/kubeconfig", "--grpc-addr=10.10.0.1:15012",
			"--grpc-plaintext-addr=10.10.0.1:15010", "--monitoring-addr=10.10.0.1:15014", "--log-level=debug",
			"--trust-domain=example.org", "--cluster-id=c1")
		if got, want := servicePorts(t, objs, "istiod"), []int64{15010, 15012, 15014}; !slices.Equal(got, want) {
			t.Errorf("Service istiod ports %v, want %v", got, want)
		}
	})

	t.Run("ztunnel", func(t *testing.T) {
		objs := render(t, helm, "ztunnel", values["ztunnel"])
		c := container(t, objs, "DaemonSet", "ztunnel", "ztunnel")
		wantArgs(t, ExpandArgs(c, env), "--node-name=node-a", "--xds-address=10.10.0.1:15012", "--ca-address=10.10.0.1:15012",
			"--root-cert=/tmp/e2e/ca/root-cert.pem", "--token-file=/tmp/e2e/node-a/token/istio-token",
			"--zds-socket=/tmp/e2e/node-a/zds/ztunnel.sock", "--readiness-addr=:25021", "--trust-domain=example.org", "--cluster-id=c1")
		for vol, want := range map[string]string{"istiod-ca-cert": "/tmp/e2e/ca", "istio-token": "/tmp/e2e/node-a/token", "zds": "/tmp/e2e/node-a/zds"} {
			if got := mountPath(c, vol); got != want {
				t.Errorf("volume %s mounted at %q, want %q", vol, got, want)
			}
		}
		if port := containerPort(c, c.ReadinessProbe.HTTPGet.Port.StrVal); port != 25021 {
			t.Errorf("readiness probe port %d, want 25021", port)
		}
	})

	t.Run("cni", func(t *testing.T) {
		objs := render(t, helm, "cni", values["cni"])
		c := container(t, objs, "DaemonSet", "ambit-cni-node", "ambit-cni-agent")
		wantArgs(t, ExpandArgs(c, env), "--kubeconfig=/tmp/e2e/kubeconfig", "--node-name=node-a", "--install-cni=false",
			"--cni-conf-dir=/tmp/e2e/node-a/net.d", "--cni-bin-dir=/tmp/e2e/node-a/bin", "--cni-plugin-path=/tmp/e2e/bin/ambit-cni",
			"--zds-socket=/tmp/e2e/node-a/zds/ztunnel.sock", "--cni-socket=/tmp/e2e/node-a/run/cni.sock",
			"--bpf-pin-dir=/sys/fs/bpf/ambit/node-a", "--cgroup-root=/sys/fs/cgroup/e2e", "--state-dir=/tmp/e2e/node-a/state",
			"--probe-sources=10.20.1.1")
	})
}

// TestMountCollision checks that values putting two volumes at one path fail rendering
// with a message naming them, instead of rendering an object the API server rejects.
func TestMountCollision(t *testing.T) {
	helm := helmBinary(t)
	tests := []struct {
		chart  string
		values map[string]any
		want   string
	}{
		{"ztunnel", map[string]any{"tokenFile": "/x/token", "zdsSocket": "/x/zds.sock"}, "dir of tokenFile and dir of zdsSocket"},
		{"cni", map[string]any{"stateDir": "/var/run/ztunnel"}, "dir of zdsSocket and stateDir"},
	}
	for _, tc := range tests {
		t.Run(tc.chart, func(t *testing.T) {
			_, err := Render(testContext(t, time.Minute), helm, filepath.Join(chartsDir, tc.chart), tc.chart, "istio-system", tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestLint(t *testing.T) {
	helm := helmBinary(t)
	for _, chart := range []string{"base", "istiod-lite", "ztunnel", "cni"} {
		t.Run(chart, func(t *testing.T) {
			out, err := run(testContext(t, time.Minute), helm, "lint", "--strict", filepath.Join(chartsDir, chart))
			if err != nil {
				t.Fatalf("helm lint --strict %s: %v\n%s", chart, err, out)
			}
		})
	}
}

func TestRenderError(t *testing.T) {
	helm := helmBinary(t)
	_, err := Render(testContext(t, time.Minute), helm, filepath.Join(t.TempDir(), "missing"), "x", "istio-system", nil)
	if err == nil {
		t.Fatal("Render of a missing chart succeeded")
	}
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func servicePorts(t *testing.T, objs []unstructured.Unstructured, name string) []int64 {
	t.Helper()
	svc, err := Find(objs, "Service", name)
	if err != nil {
		t.Fatal(err)
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	var out []int64
	for _, p := range ports {
		out = append(out, p.(map[string]any)["port"].(int64))
	}
	slices.Sort(out)
	return out
}

// wantRule fails unless the (Cluster)Role kind/name grants verb on group/resource.
func wantRule(t *testing.T, objs []unstructured.Unstructured, kind, name, group, resource, verb string) {
	t.Helper()
	role, err := Find(objs, kind, name)
	if err != nil {
		t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, raw := range rules {
		var pr rbacv1.PolicyRule
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw.(map[string]any), &pr); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(pr.APIGroups, group) && slices.Contains(pr.Resources, resource) && slices.Contains(pr.Verbs, verb) {
			return
		}
	}
	t.Errorf("%s %s does not grant %s on %s (group %q)", kind, name, verb, resource, group)
}
