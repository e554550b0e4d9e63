package waypoint

import (
	"fmt"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Labels the controller puts on what it generates, with Istio's names and values so
// that tools that look for Istio's managed waypoints find these.
const (
	// LabelManaged marks generated objects; the controller's informers select on it.
	LabelManaged = "gateway.istio.io/managed"
	// ManagedValue is LabelManaged's value for waypoints (Istio's
	// ManagedGatewayMeshControllerLabel).
	ManagedValue = "istio.io-mesh-controller"
	// LabelGatewayClassName carries the Gateway's class on generated objects.
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"
)

// Names of the waypoint container, its ports and volumes.
const (
	ContainerName   = "waypoint"
	PortNameMesh    = "mesh"        // 15008, HBONE; also the Service port name (as Istio)
	PortNameMetrics = "metrics"     // 15020
	PortNameStatus  = "status-port" // 15021, /healthz/ready; also a Service port
	// BootstrapConfigMapSuffix makes the Envoy bootstrap ConfigMap's name:
	// "<gateway>" + BootstrapConfigMapSuffix.
	BootstrapConfigMapSuffix = "-envoy-bootstrap"
	// ReadinessPath is the waypoint's readiness endpoint on port 15021.
	ReadinessPath = "/healthz/ready"
	// WaypointBinary is where the Ambit waypoint image holds its binary (as the
	// ztunnel chart runs /usr/local/bin/ztunnel).
	WaypointBinary = "/usr/local/bin/waypoint"

	volumeToken    = "istio-token"
	volumeRootCert = "istiod-ca-cert"
	volumeEnvoy    = "istio-envoy"
	tokenPath      = "istio-token"
)

// Environment variables of the waypoint container (issue 5, section 1).
const (
	EnvPodName        = "POD_NAME"
	EnvPodNamespace   = "POD_NAMESPACE"
	EnvInstanceIP     = "INSTANCE_IP"
	EnvServiceAccount = "SERVICE_ACCOUNT"
	EnvGatewayName    = "GATEWAY_NAME"
)

// desired is everything the controller applies for one Gateway.
type desired struct {
	serviceAccount *corev1ac.ServiceAccountApplyConfiguration
	deployment     *appsv1ac.DeploymentApplyConfiguration
	service        *corev1ac.ServiceApplyConfiguration
	bootstrap      *corev1ac.ConfigMapApplyConfiguration // engine envoy only
}

// build returns the objects of an accepted Gateway under c (defaults applied).
func (c *Config) build(gw *gatewayv1.Gateway) (*desired, error) {
	d := &desired{
		serviceAccount: corev1ac.ServiceAccount(gw.Name, gw.Namespace).
			WithLabels(objectLabels(gw)).WithAnnotations(infraAnnotations(gw)).
			WithOwnerReferences(ownerRef(gw)),
		service: c.service(gw),
	}
	var container *corev1ac.ContainerApplyConfiguration
	volumes := c.commonVolumes()
	switch c.Engine {
	case EngineEnvoy:
		yaml, err := c.renderBootstrap(gw)
		if err != nil {
			return nil, err
		}
		d.bootstrap = corev1ac.ConfigMap(bootstrapName(gw.Name), gw.Namespace).
			WithLabels(objectLabels(gw)).WithAnnotations(infraAnnotations(gw)).
			WithOwnerReferences(ownerRef(gw)).
			WithData(map[string]string{bootstrapKey: yaml})
		container = c.envoyContainer(gw)
		volumes = append(volumes, corev1ac.Volume().WithName(volumeEnvoy).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(bootstrapName(gw.Name))))
	default:
		container = c.ambitContainer(gw)
	}
	d.deployment = appsv1ac.Deployment(gw.Name, gw.Namespace).
		WithLabels(objectLabels(gw)).WithAnnotations(infraAnnotations(gw)).
		WithOwnerReferences(ownerRef(gw)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{wire.LabelGatewayName: gw.Name})).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(podLabels(gw)).
				WithAnnotations(podAnnotations(gw)).
				WithSpec(corev1ac.PodSpec().
					WithServiceAccountName(gw.Name).
					WithAutomountServiceAccountToken(false). // the waypoint reads only its projected istio-ca token
					WithContainers(container).
					WithVolumes(volumes...))))
	return d, nil
}

func bootstrapName(gateway string) string { return gateway + BootstrapConfigMapSuffix }

// ownerRef makes gw the controlling owner, so the garbage collector deletes the object
// with it, and foreground deletion of gw waits for it.
func ownerRef(gw *gatewayv1.Gateway) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(gatewayv1.GroupVersion.String()).WithKind("Gateway").
		WithName(gw.Name).WithUID(gw.UID).
		WithController(true).WithBlockOwnerDeletion(true)
}

// objectLabels: the Gateway's spec.infrastructure.labels (Gateway API: put on
// generated resources), then the controller's own labels, which win.
func objectLabels(gw *gatewayv1.Gateway) map[string]string {
	l := map[string]string{}
	if gw.Spec.Infrastructure != nil {
		for k, v := range gw.Spec.Infrastructure.Labels {
			l[string(k)] = string(v)
		}
	}
	l[wire.LabelGatewayName] = gw.Name
	l[LabelGatewayClassName] = string(gw.Spec.GatewayClassName)
	l[LabelManaged] = ManagedValue
	return l
}

func infraAnnotations(gw *gatewayv1.Gateway) map[string]string {
	a := map[string]string{}
	if gw.Spec.Infrastructure != nil {
		for k, v := range gw.Spec.Infrastructure.Annotations {
			a[string(k)] = string(v)
		}
	}
	return a
}

// podLabels: never captured by ztunnel (the waypoint terminates HBONE itself), never
// given an Istio sidecar.
func podLabels(gw *gatewayv1.Gateway) map[string]string {
	l := objectLabels(gw)
	l[wire.LabelDataplaneMode] = wire.DataplaneModeNone
	l["sidecar.istio.io/inject"] = "false"
	return l
}

func podAnnotations(gw *gatewayv1.Gateway) map[string]string {
	a := infraAnnotations(gw)
	maps.Copy(a, map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(wire.PortMetrics),
		"prometheus.io/path":   "/metrics",
	})
	return a
}

// ambitArgs are the Go waypoint's flags (issue 5, section 1).
func (c *Config) ambitArgs() []string {
	return []string{
		"--xds-address=" + c.XDSAddress,
		"--xds-server-name=" + c.XDSServerName,
		"--root-cert=" + RootCertFile,
		"--token-file=" + TokenFile,
		"--cluster-id=" + c.ClusterID,
		"--trust-domain=" + c.TrustDomain,
		"--admin-addr=" + adminAddr,
		"--metrics-addr=" + metricsAddr,
		"--readiness-addr=" + readinessAddr,
		"--log-level=" + c.LogLevel,
	}
}

func (c *Config) ambitContainer(gw *gatewayv1.Gateway) *corev1ac.ContainerApplyConfiguration {
	return baseContainer(gw).WithImage(c.Image).
		WithCommand(WaypointBinary).
		WithArgs(c.ambitArgs()...)
}

// baseContainer: environment, ports, probe, mounts and security context shared by
// both engines.
func baseContainer(gw *gatewayv1.Gateway) *corev1ac.ContainerApplyConfiguration {
	field := func(name, path string) *corev1ac.EnvVarApplyConfiguration {
		return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath(path)))
	}
	port := func(name string, n int) *corev1ac.ContainerPortApplyConfiguration {
		return corev1ac.ContainerPort().WithName(name).WithContainerPort(int32(n)).WithProtocol(corev1.ProtocolTCP)
	}
	return corev1ac.Container().WithName(ContainerName).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithEnv(
			field(EnvPodName, "metadata.name"),
			field(EnvPodNamespace, "metadata.namespace"),
			field(EnvInstanceIP, "status.podIP"),
			field(EnvServiceAccount, "spec.serviceAccountName"),
			corev1ac.EnvVar().WithName(EnvGatewayName).WithValue(gw.Name),
		).
		WithPorts(port(PortNameMesh, wire.PortHBONE), port(PortNameMetrics, wire.PortMetrics), port(PortNameStatus, wire.PortReadiness)).
		WithReadinessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(ReadinessPath).WithPort(intstr.FromInt32(wire.PortReadiness))).
			WithPeriodSeconds(5).WithTimeoutSeconds(2).WithFailureThreshold(3)).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName(volumeToken).WithMountPath(TokenDir).WithReadOnly(true),
			corev1ac.VolumeMount().WithName(volumeRootCert).WithMountPath(RootCertDir).WithReadOnly(true),
		).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsUser(1337).WithRunAsGroup(1337).WithRunAsNonRoot(true).
			WithPrivileged(false).WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))
}

// commonVolumes: the projected token (audience TokenAudience, file istio-token) and
// the root ConfigMap's root-cert.pem, as the ztunnel chart mounts them.
func (c *Config) commonVolumes() []*corev1ac.VolumeApplyConfiguration {
	return []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName(volumeToken).WithProjected(corev1ac.ProjectedVolumeSource().
			WithSources(corev1ac.VolumeProjection().WithServiceAccountToken(corev1ac.ServiceAccountTokenProjection().
				WithAudience(c.TokenAudience).
				WithExpirationSeconds(int64(DefaultTokenExpiration.Seconds())).
				WithPath(tokenPath)))),
		corev1ac.Volume().WithName(volumeRootCert).WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(c.RootCertConfigMap).
			WithItems(corev1ac.KeyToPath().WithKey(rootCertKey).WithPath(rootCertKey))),
	}
}

// service: ClusterIP, the ports Istio gives a waypoint's Service, and the Gateway's
// istio.io/waypoint-for label (read by WDS waypoint selection).
func (c *Config) service(gw *gatewayv1.Gateway) *corev1ac.ServiceApplyConfiguration {
	labels := objectLabels(gw)
	if v, ok := gw.Labels[wire.LabelWaypointFor]; ok {
		labels[wire.LabelWaypointFor] = v
	}
	port := func(name, appProtocol string, n int) *corev1ac.ServicePortApplyConfiguration {
		return corev1ac.ServicePort().WithName(name).WithProtocol(corev1.ProtocolTCP).
			WithAppProtocol(appProtocol).WithPort(int32(n)).WithTargetPort(intstr.FromInt32(int32(n)))
	}
	return corev1ac.Service(gw.Name, gw.Namespace).
		WithLabels(labels).WithAnnotations(infraAnnotations(gw)).
		WithOwnerReferences(ownerRef(gw)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(map[string]string{wire.LabelGatewayName: gw.Name}).
			WithPorts(
				port(PortNameStatus, "tcp", wire.PortReadiness),
				port(PortNameMesh, "all", wire.PortHBONE),
			))
}

// hostname is the waypoint Service's cluster DNS name.
func (c *Config) hostname(gw *gatewayv1.Gateway) string {
	return fmt.Sprintf("%s.%s.svc.%s", gw.Name, gw.Namespace, c.DomainSuffix)
}
