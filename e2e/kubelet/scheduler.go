package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Scheduler binds unscheduled pods to nodes, standing in for kube-scheduler: a
// DaemonSet pod goes to the node its required node affinity names (metadata.name), a
// pod with a kubernetes.io/hostname node selector to that node, any other pod to the
// first of Nodes.
type Scheduler struct {
	Client kubernetes.Interface
	// Nodes are the schedulable node names.
	Nodes  []string
	Logger *slog.Logger
}

// Run binds pending pods every 200 ms until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if err := s.bindPending(ctx); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.Warn("schedule", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Scheduler) bindPending(ctx context.Context) error {
	pods, err := s.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "").String(),
	})
	if err != nil {
		return fmt.Errorf("list pending pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		node := s.nodeFor(&p)
		if node == "" {
			continue
		}
		b := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}
		if err := s.Client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("bind %s/%s to %s: %w", p.Namespace, p.Name, node, err)
		}
	}
	return nil
}

// nodeFor picks the node for p, or "" when none of Nodes fits.
func (s *Scheduler) nodeFor(p *corev1.Pod) string {
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range term.MatchFields {
				if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn {
					for _, v := range f.Values {
						if slices.Contains(s.Nodes, v) {
							return v
						}
					}
				}
			}
		}
		return ""
	}
	if h, ok := p.Spec.NodeSelector[corev1.LabelHostname]; ok {
		if slices.Contains(s.Nodes, h) {
			return h
		}
		return ""
	}
	if len(s.Nodes) == 0 {
		return ""
	}
	return s.Nodes[0]
}
