package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

const testRoot = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"

func namespace(name string, phase corev1.NamespacePhase) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
}

func runPublisher(t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p := &RootCertPublisher{Client: kc, RootPEM: []byte(testRoot), Logger: testLogger(t)}
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// published reports whether ns has the root ConfigMap with the right data and label.
func published(kc kubernetes.Interface, ns string) bool {
	cm, err := kc.CoreV1().ConfigMaps(ns).Get(context.Background(), RootCertConfigMap, metav1.GetOptions{})
	return err == nil && cm.Data[RootCertKey] == testRoot && cm.Labels["istio.io/config"] == "true"
}

func TestRootCertPublisher(t *testing.T) {
	stale := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: "stale", Labels: map[string]string{"team": "x"}},
		Data:       map[string]string{RootCertKey: "old root", "extra": "kept"},
	}
	kc := fake.NewClientset(
		namespace("default", corev1.NamespaceActive), namespace("kube-system", corev1.NamespaceActive),
		namespace("kube-public", corev1.NamespaceActive), namespace("going", corev1.NamespaceTerminating),
		namespace("stale", corev1.NamespaceActive), stale,
	)
	runPublisher(t, kc)
	ctx := t.Context()

	for _, ns := range []string{"default", "kube-system", "stale"} {
		eventually(t, "root cert in "+ns, func() bool { return published(kc, ns) })
	}
	cm, _ := kc.CoreV1().ConfigMaps("stale").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	if cm.Data["extra"] != "kept" || cm.Labels["team"] != "x" {
		t.Errorf("update dropped other keys or labels: %v %v", cm.Data, cm.Labels)
	}

	if _, err := kc.CoreV1().Namespaces().Create(ctx, namespace("new", corev1.NamespaceActive), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "root cert in a new namespace", func() bool { return published(kc, "new") })

	if err := kc.CoreV1().ConfigMaps("new").Delete(ctx, RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted root cert put back", func() bool { return published(kc, "new") })

	cm, _ = kc.CoreV1().ConfigMaps("default").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	cm.Data[RootCertKey] = "tampered"
	if _, err := kc.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "changed root cert put back", func() bool { return published(kc, "default") })

	// Skipped namespaces: checked last, after the publisher has provably run through
	// the initial namespaces.
	for _, ns := range []string{"kube-public", "going"} {
		if _, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, RootCertConfigMap, metav1.GetOptions{}); err == nil {
			t.Errorf("root cert written to %s", ns)
		}
	}
}

func TestRootCertPublisherRequiresRoot(t *testing.T) {
	if err := (&RootCertPublisher{Client: fake.NewClientset()}).Run(context.Background()); err == nil {
		t.Fatal("Run without a root succeeded")
	}
}
