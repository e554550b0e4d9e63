package waypoint

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// EnvoyBinary is the Envoy binary in the official Envoy images.
const EnvoyBinary = "/usr/local/bin/envoy"

// renderBootstrap returns gw's Envoy bootstrap as YAML (proto field names, keys
// sorted), as stored in the ConfigMap "<gateway>-envoy-bootstrap".
func (c *Config) renderBootstrap(gw *gatewayv1.Gateway) (string, error) {
	b, err := c.bootstrap(gw)
	if err != nil {
		return "", err
	}
	if err := b.ValidateAll(); err != nil {
		return "", fmt.Errorf("render bootstrap: %w", err)
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return "", fmt.Errorf("render bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return "", fmt.Errorf("render bootstrap: %w", err)
	}
	return string(y), nil
}

// nodeOverride is the --config-yaml Envoy merges over the bootstrap file: the node
// id in Istio's format "router~<ip>~<pod>.<ns>~<ns>.svc.<suffix>" and INSTANCE_IPS,
// written with $(VAR) references that the kubelet expands from the container's
// environment (the only pod-specific parts).
func (c *Config) nodeOverride() string {
	node := map[string]any{"node": map[string]any{
		"id": fmt.Sprintf("router~$(%s)~$(%s).$(%s)~$(%s).svc.%s",
			EnvInstanceIP, EnvPodName, EnvPodNamespace, EnvPodNamespace, c.DomainSuffix),
		"metadata": map[string]any{MetaInstanceIPs: "$(" + EnvInstanceIP + ")"},
	}}
	js, _ := json.Marshal(node) // strings only: cannot fail
	return string(js)
}

// envoyLogLevel maps the controller's level names to Envoy's.
func envoyLogLevel(level string) string {
	if level == "warn" {
		return "warning"
	}
	return level
}

// envoyArgs run Envoy on the bootstrap file, with the pod's node identity merged in.
// Hot restart is off: one Envoy per pod, and it needs no shared memory then.
func (c *Config) envoyArgs() []string {
	return []string{
		"-c", BootstrapFile,
		"--config-yaml", c.nodeOverride(),
		"--log-level", envoyLogLevel(c.LogLevel),
		"--disable-hot-restart",
	}
}

func (c *Config) envoyContainer(gw *gatewayv1.Gateway) *corev1ac.ContainerApplyConfiguration {
	return baseContainer(gw).WithImage(c.EnvoyImage).
		WithCommand(EnvoyBinary).
		WithArgs(c.envoyArgs()...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(volumeEnvoy).WithMountPath(BootstrapDir).WithReadOnly(true))
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
