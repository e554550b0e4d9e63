package model

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestResolveTargetPort covers how a named target port resolves against a pod, as
// Istio's ambient index: TCP container ports (no protocol means TCP), then native
// sidecars; UDP ports and plain init containers never count.
func TestResolveTargetPort(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "setup", Ports: []corev1.ContainerPort{{Name: "debug", ContainerPort: 7001}}},
			{Name: "agent", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "agent", ContainerPort: 15020, Protocol: corev1.ProtocolTCP}}},
		},
		Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080},
			{Name: "grpc", ContainerPort: 9000, Protocol: corev1.ProtocolTCP},
			{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}}},
	}}
	tests := []struct {
		name   string
		port   corev1.ServicePort
		want   uint32
		wantOK bool
	}{
		{"numeric", corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8080)}, 8080, true},
		{"unset is the service port", corev1.ServicePort{Port: 80}, 80, true},
		{"named without protocol", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, 8080, true},
		{"named tcp", corev1.ServicePort{Port: 90, TargetPort: intstr.FromString("grpc")}, 9000, true},
		{"named udp", corev1.ServicePort{Port: 53, TargetPort: intstr.FromString("dns")}, 0, false},
		{"native sidecar", corev1.ServicePort{Port: 15020, TargetPort: intstr.FromString("agent")}, 15020, true},
		{"plain init container", corev1.ServicePort{Port: 7001, TargetPort: intstr.FromString("debug")}, 0, false},
		{"unknown name", corev1.ServicePort{Port: 81, TargetPort: intstr.FromString("nope")}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := resolveTargetPort(tc.port, pod)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("resolveTargetPort = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
