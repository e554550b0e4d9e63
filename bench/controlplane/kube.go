package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/pkg/kubeclient"
)

// kubeSource is istiod-lite's Kubernetes config source: a real etcd and
// kube-apiserver (e2e/kube, no controller manager, so nothing acts on pods without a
// kubelet) holding the synthetic objects, written through the API.
type kubeSource struct {
	cluster  *kube.Cluster
	client   kubernetes.Interface
	services int
	// loadTime is how long creating the objects took.
	loadTime time.Duration
}

// loadWorkers is how many API writes run in parallel while loading objects.
const loadWorkers = 16

func newKubeSource(ctx context.Context, binDir, dir string, pods, services int, log *slog.Logger) (*kubeSource, error) {
	c, err := kube.Start(ctx, kube.Options{BinDir: binDir, Dir: filepath.Join(dir, "kube"), Logger: log, NoControllerManager: true})
	if err != nil {
		return nil, err
	}
	rc := kubeclient.Protobuf(c.RESTConfig)
	rc.QPS, rc.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("kube client: %w", err)
	}
	s := &kubeSource{cluster: c, client: client, services: services}
	begin := time.Now()
	if err := s.load(ctx, pods, services); err != nil {
		c.Close()
		return nil, err
	}
	s.loadTime = time.Since(begin)
	return s, nil
}

// load creates istio-system, the namespaces, services and pods, and sets each pod's
// status (IP, Running, Ready) as a kubelet would.
func (s *kubeSource) load(ctx context.Context, pods, services int) error {
	nss := append(namespaceObjects(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}})
	for _, ns := range nss {
		if _, err := s.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadWorkers)
	for i := range services {
		g.Go(func() error {
			// Each service's pods run as sa-<i>; admission wants the account to exist.
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sa-%d", i), Namespace: nsName(i % Namespaces)}}
			if _, err := s.client.CoreV1().ServiceAccounts(sa.Namespace).Create(gctx, sa, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create service account: %w", err)
			}
			svc := serviceObject(i, false)
			if _, err := s.client.CoreV1().Services(svc.Namespace).Create(gctx, svc, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create service: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(loadWorkers)
	for i := range pods {
		g.Go(func() error {
			want := podObject(i, services, revision(0))
			created, err := s.client.CoreV1().Pods(want.Namespace).Create(gctx, want, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create pod: %w", err)
			}
			created.Status = want.Status
			if _, err := s.client.CoreV1().Pods(want.Namespace).UpdateStatus(gctx, created, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("set pod status: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (s *kubeSource) args() []string { return []string{"--kubeconfig", s.cluster.Kubeconfig} }

// change patches pod i's revision label through the API.
func (s *kubeSource) change(ctx context.Context, i int, rev string) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, revisionLabel, rev)
	ns := podObject(i, s.services, rev).Namespace
	if _, err := s.client.CoreV1().Pods(ns).Patch(ctx, podName(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch pod: %w", err)
	}
	return nil
}

func (s *kubeSource) close() error { return s.cluster.Close() }
