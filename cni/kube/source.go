// Package kube is the node agent's Kubernetes side (issue 3, Kubernetes mode): Source
// watches this node's Pods and every Namespace with client-go informers and delivers
// them as kubefile.Snapshots, the same shape the file watcher produces, so enrolment
// decisions are identical in both modes (F-ENROL-1); Annotator writes the pod annotation
// ambient.istio.io/redirection once ztunnel has acknowledged a pod (F-ENROL-4), as
// Istio's node agent does; NewClient builds the client from --kubeconfig or the
// in-cluster config.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// DefaultDebounce is how long Source gathers changes before it builds one snapshot.
const DefaultDebounce = 50 * time.Millisecond

// Source watches the Pods scheduled to one node (field selector spec.nodeName=<node>,
// as Istio's node agent) and all Namespaces, and hands a kubefile.Snapshot holding just
// those two kinds to a callback: once when both caches have synced, then at most once
// per Debounce after any add, update or delete. Snapshot objects are shared with the
// informer caches and must be treated as read-only.
type Source struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// NodeName selects the pods. Required.
	NodeName string
	// Debounce batches bursts of changes; 0 means DefaultDebounce.
	Debounce time.Duration
	// Logger may be nil (slog.Default()).
	Logger *slog.Logger
}

// Run starts the informers and calls onChange (from a single goroutine) with each new
// snapshot until ctx ends; it returns nil then, after the informers have stopped. It
// fails at once when the Source is not configured.
func (s *Source) Run(ctx context.Context, onChange func(*kubefile.Snapshot)) error {
	if s.Client == nil || s.NodeName == "" || onChange == nil {
		return errors.New("kube source: client, node name and callback are required")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	debounce := s.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	node := fields.OneTermEqualSelector("spec.nodeName", s.NodeName).String()
	pods := coreinformers.NewFilteredPodInformer(s.Client, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = node })
	nss := coreinformers.NewNamespaceInformer(s.Client, 0, cache.Indexers{})
	kick := make(chan struct{}, 1)
	for _, inf := range []cache.SharedIndexInformer{pods, nss} {
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return fmt.Errorf("kube source: %w", err)
		}
		if _, err := inf.AddEventHandler(kicker(kick)); err != nil {
			return fmt.Errorf("kube source: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, inf := range []cache.SharedIndexInformer{pods, nss} {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	log.Info("waiting for pod and namespace caches", "node", s.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, nss.HasSynced) {
		return nil // ctx ended
	}
	build := func() *kubefile.Snapshot {
		return &kubefile.Snapshot{
			Pods:       nodePods(pods.GetStore().List(), s.NodeName),
			Namespaces: namespaces(nss.GetStore().List()),
		}
	}
	drain(kick)
	snap := build()
	log.Info("pod and namespace caches synced", "pods", len(snap.Pods), "namespaces", len(snap.Namespaces))
	onChange(snap)
	timer := time.NewTimer(debounce)
	timer.Stop() // armed on the first change (Go ≥1.23 timers: no stale tick after Stop)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		}
		timer.Reset(debounce)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		drain(kick)
		onChange(build())
	}
}

// kicker returns a handler that signals kick (without blocking) on every event.
func kicker(kick chan<- struct{}) cache.ResourceEventHandlerFuncs {
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal() },
		UpdateFunc: func(any, any) { signal() },
		DeleteFunc: func(any) { signal() },
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// stripManagedFields drops metadata.managedFields before objects enter the caches: the
// agent never reads them and they are often the largest part of a pod.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// nodePods returns the cached pods bound to node, sorted by namespace and name. The
// node check repeats the server-side field selector (fake clients ignore selectors).
func nodePods(objs []any, node string) []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// namespaces returns the cached namespaces sorted by name.
func namespaces(objs []any) []*corev1.Namespace {
	out := make([]*corev1.Namespace, 0, len(objs))
	for _, o := range objs {
		if ns, ok := o.(*corev1.Namespace); ok {
			out = append(out, ns)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
