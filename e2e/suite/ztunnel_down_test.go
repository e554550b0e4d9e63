package suite

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/testbed"
)

// redirectionAnnotation is set on a pod once its node's ztunnel serves it (F-ENROL-4).
const redirectionAnnotation = "ambient.istio.io/redirection"

// TestE2EPodStartsWhileZtunnelDown keeps node-a's ztunnel down (a crash loop) while a
// pod of an ambient namespace is created there (F-PLUS-3): the pod still starts, is not
// yet annotated, and once ztunnel is back it is served and its traffic is mTLS.
func TestE2EPodStartsWhileZtunnelDown(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const ns = "e2e-zt-down"
	newNamespace(ctx, t, ns, true)
	server := echoServer(ctx, t, ns, "server", "node-b")
	zt, err := systemPod(ctx, "app=ztunnel", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	release, err := env.Node("node-a").Kubelet.HoldContainer(zt.Namespace, zt.Name, "ztunnel")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := testbed.Poll(ctx, "node-a ztunnel down", func(context.Context) (bool, error) {
		_, err := ztunnelDump("node-a")
		return err != nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	client := sleeper(ctx, t, ns, "client", "node-a") // waits until ready: the pod started
	if v := client.Annotations[redirectionAnnotation]; v != "" {
		t.Fatalf("pod annotated %s=%s while ztunnel is down", redirectionAnnotation, v)
	}
	release()
	if _, err := env.WaitPodReady(ctx, zt.Namespace, zt.Name); err != nil {
		t.Fatal(err)
	}
	if err := served(ctx, "node-a", ns, 1); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Poll(ctx, "redirection annotation", func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Annotations[redirectionAnnotation] == "enabled", fmt.Errorf("annotations %v", p.Annotations)
	}); err != nil {
		t.Fatal(err)
	}
	err = testbed.Poll(ctx, "mTLS from the late-enrolled pod", func(ctx context.Context) (bool, error) {
		before, err := inboundMTLS("node-b")
		if err != nil {
			return false, err
		}
		if _, err := tcpEcho(ctx, client, podAddr(server, 9000)); err != nil {
			return false, err
		}
		after, err := inboundMTLS("node-b")
		if err != nil {
			return false, err
		}
		return after > before, errors.New("connection was not mTLS")
	})
	if err != nil {
		t.Fatal(err)
	}
}
