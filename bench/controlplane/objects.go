// Package controlplane measures istiod-lite at scale (F-CP-4, performance.md's control
// plane figures): it loads istiod-lite with synthetic pods and services through one of
// its config sources (a directory of YAML, or a real kube-apiserver), connects simulated
// ztunnels (delta xDS clients, pkg/xdsclient, each on its own gRPC connection), changes
// pods at a steady rate and records, per change, the time from the write to the moment
// the last client holds the changed workload. It also reports the bytes and resources
// pushed per change, istiod-lite's memory, and what a reconnect costs: the resources
// resent to up-to-date clients after istiod-lite restarts (must be 0).
package controlplane

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Namespaces is how many ambient namespaces the synthetic objects are spread over, and
// Nodes how many nodes their pods are scheduled on.
const (
	Namespaces = 10
	Nodes      = 20
)

// revisionLabel is the pod label the churn changes; istiod-lite reports it as the
// workload's canonical_revision, so each change is one changed Workload resource.
const revisionLabel = "version"

// namespaceObjects returns the ambient namespaces ns-0 … ns-(Namespaces-1).
func namespaceObjects() []*corev1.Namespace {
	out := make([]*corev1.Namespace, 0, Namespaces)
	for n := range Namespaces {
		out = append(out, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: nsName(n), Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}},
		})
	}
	return out
}

func nsName(n int) string { return fmt.Sprintf("ns-%d", n) }

// serviceObject is service i of services: namespace ns-(i mod Namespaces), selecting
// app=svc-i, port 80 to 8080. withIP gives it cluster IP 10.96.<i/250>.<i%250+1> (the
// file source; the API server allocates its own).
func serviceObject(i int, withIP bool) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: nsName(i % Namespaces)},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": fmt.Sprintf("svc-%d", i)},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if withIP {
		svc.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
	}
	return svc
}

// podObject is pod i: selected by service i mod services (and in its namespace), on
// node i mod Nodes, running and ready with IP 10.<20+i/62500>.<i/250%250>.<i%250+1>,
// at revision rev.
func podObject(i, services int, rev string) *corev1.Pod {
	svc := i % services
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: podName(i), Namespace: nsName(svc % Namespaces),
			Labels: map[string]string{"app": fmt.Sprintf("svc-%d", svc), revisionLabel: rev},
		},
		Spec: corev1.PodSpec{
			NodeName:           fmt.Sprintf("node-%d", i%Nodes),
			ServiceAccountName: fmt.Sprintf("sa-%d", svc),
			Containers:         []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: podIP(i), PodIPs: []corev1.PodIP{{IP: podIP(i)}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func podName(i int) string { return fmt.Sprintf("pod-%d", i) }

func podIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", 20+i/62500, i/250%250, i%250+1) }

// revision is the label value of change k; change 0 is the initial state.
func revision(k int) string { return fmt.Sprintf("c%d", k) }

// changedPod is the pod change k touches: successive changes hit pods far apart (and,
// in the file source, different files), and a pod is hit again only after every other.
func changedPod(k, pods int) int { return (k * 7919) % pods }
