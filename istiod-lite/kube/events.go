package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Problem is an object the model could not use as written (e.g. an AuthorizationPolicy
// with an unknown action), to be shown to its owner as a Warning Event on the object.
type Problem struct {
	// APIVersion, Kind, Namespace and Name identify the object ("security.istio.io/v1",
	// "AuthorizationPolicy", ...). Namespace is "" for cluster-scoped objects.
	APIVersion, Kind, Namespace, Name string
	// UID is the object's uid; kubectl describe lists only events carrying it.
	UID types.UID
	// Reason is a CamelCase cause, e.g. "InvalidPolicy"; "" means "InvalidConfig".
	Reason string
	// Message explains the problem; it is cut to 1024 bytes.
	Message string
}

func (p Problem) key() string {
	return p.Kind + "\x00" + p.Namespace + "\x00" + p.Name + "\x00" + string(p.UID) + "\x00" + p.Message
}

// EventReporter turns Problems into core/v1 Warning Events, once per distinct problem:
// a problem reported again with every later snapshot makes no new Event while it
// persists; one that goes away and comes back makes a new one. Report never blocks;
// Run does the API writes. Events are best effort: failures are logged and retried with
// the next Report.
type EventReporter struct {
	// Client creates the Events. Required.
	Client kubernetes.Interface
	// Component is the Event source; "" means "istiod-lite".
	Component string
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex
	notify   chan struct{}
	current  []Problem
	reported map[string]bool
}

func (r *EventReporter) signal() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notify == nil {
		r.notify = make(chan struct{}, 1)
	}
	return r.notify
}

// Report replaces the set of current problems. Safe for concurrent use.
func (r *EventReporter) Report(problems []Problem) {
	n := r.signal()
	r.mu.Lock()
	r.current = append([]Problem(nil), problems...)
	r.mu.Unlock()
	select {
	case n <- struct{}{}:
	default:
	}
}

// Run writes Events for new problems until ctx ends, then returns nil.
func (r *EventReporter) Run(ctx context.Context) error {
	if r.Client == nil {
		return errors.New("event reporter: Client is required")
	}
	n := r.signal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n:
			r.flush(ctx)
		}
	}
}

func (r *EventReporter) flush(ctx context.Context) {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	r.mu.Lock()
	current, done := r.current, r.reported
	r.mu.Unlock()
	next := map[string]bool{}
	for _, p := range current {
		k := p.key()
		if done[k] || next[k] {
			next[k] = true
			continue
		}
		if err := r.emit(ctx, p); err != nil {
			log.Warn("write warning event", "kind", p.Kind, "namespace", p.Namespace, "name", p.Name, "err", err)
			continue
		}
		next[k] = true
	}
	r.mu.Lock()
	r.reported = next
	r.mu.Unlock()
}

const maxEventMessage = 1024

func (r *EventReporter) emit(ctx context.Context, p Problem) error {
	component := r.Component
	if component == "" {
		component = "istiod-lite"
	}
	reason := p.Reason
	if reason == "" {
		reason = "InvalidConfig"
	}
	msg := p.Message
	if len(msg) > maxEventMessage {
		msg = strings.ToValidUTF8(msg[:maxEventMessage], "")
	}
	ns := p.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // events about cluster-scoped objects live there
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, time.Now().UnixNano()), Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: p.APIVersion, Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, UID: p.UID,
		},
		Reason:         reason,
		Message:        msg,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: component},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := r.Client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create event: %w", err)
	}
	return nil
}
