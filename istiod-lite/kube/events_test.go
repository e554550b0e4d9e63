package kube

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestEventReporter(t *testing.T) {
	kc := fake.NewClientset()
	r := &EventReporter{Client: kc, Logger: testLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	events := func() []corev1.Event {
		list, err := kc.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	waitCount := func(what string, n int) {
		t.Helper()
		eventually(t, what, func() bool { return len(events()) >= n })
		if got := len(events()); got != n {
			t.Fatalf("%s: %d events, want %d", what, got, n)
		}
	}

	bad := Problem{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy", Namespace: "shop", Name: "p1",
		UID: "uid-1", Reason: "InvalidPolicy", Message: "unknown action MAYBE"}
	node := Problem{APIVersion: "v1", Kind: "Node", Name: "n1", Message: strings.Repeat("é", 600)}
	r.Report([]Problem{bad, node})
	waitCount("first two problems", 2)
	for _, ev := range events() {
		if ev.Type != corev1.EventTypeWarning || ev.Source.Component != "istiod-lite" {
			t.Errorf("event %s: type %q source %q", ev.Name, ev.Type, ev.Source.Component)
		}
		switch ev.InvolvedObject.Name {
		case "p1":
			if ev.Namespace != "shop" || ev.InvolvedObject.UID != "uid-1" || ev.Reason != "InvalidPolicy" || ev.InvolvedObject.Kind != "AuthorizationPolicy" {
				t.Errorf("policy event: %+v", ev)
			}
		case "n1":
			if ev.Namespace != "default" || len(ev.Message) > 1024 || ev.Reason != "InvalidConfig" {
				t.Errorf("node event: namespace %q, message %d bytes, reason %q", ev.Namespace, len(ev.Message), ev.Reason)
			}
		}
	}

	// Reported again with a new one: only the new one makes an event.
	third := bad
	third.Name, third.UID = "p2", "uid-2"
	r.Report([]Problem{bad, node, third})
	waitCount("one more problem", 3)

	// Gone, then back: a new event.
	r.Report(nil)
	eventually(t, "problems cleared", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.reported) == 0
	})
	r.Report([]Problem{bad})
	waitCount("a problem that came back", 4)
}
