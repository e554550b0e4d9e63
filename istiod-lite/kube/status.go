package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	istiometa "istio.io/api/meta/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// GatewayControllerName is the controllerName of the HTTPRoute parent statuses
// StatusWriter owns, Istio's own ("istio.io/gateway-controller"), so that tools built
// for Istio ambient read Ambit's route status unchanged.
const GatewayControllerName = "istio.io/gateway-controller"

// Retry timing of StatusWriter: a flush with failed writes is retried after
// statusRetryMin, doubling up to statusRetryMax, unless a Report comes first.
// An object whose status was written is checked again against the API server only
// when its wanted status changes or after statusResync.
const (
	statusRetryMin = 200 * time.Millisecond
	statusRetryMax = 30 * time.Second
	statusResync   = 10 * time.Minute
)

// StatusWriter writes l7.Build's conditions (l7.Result.Status) to the objects they
// describe: HTTPRoute status.parents entries of controller GatewayControllerName (one per
// parent Build reports; entries of other controllers are kept, ours for parents Build no
// longer reports are removed), and the status.conditions of VirtualServices,
// DestinationRules and AuthorizationPolicies (only condition types Build sets are
// replaced). LastTransitionTime changes only when a condition's status flips, as the
// Kubernetes API conventions ask. An object is written only when its status differs
// semantically (times ignored), with UpdateStatus after a fresh Get; on a conflict it is
// read and written again, and an object deleted meanwhile (or whose CRD is not served)
// is skipped. Objects Build stops reporting keep their last status. Gateway statuses
// are not written here (istiod-lite/waypoint owns them).
//
// Report never blocks and the latest Report supersedes any not yet written; Run does
// the API writes. Failed writes are logged and retried with backoff.
type StatusWriter struct {
	// Gateway writes HTTPRoute status; nil skips HTTPRoutes.
	Gateway gatewayclient.Interface
	// Istio writes VirtualService, DestinationRule and AuthorizationPolicy status; nil
	// skips them.
	Istio istioclient.Interface
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	now func() time.Time // test seam; nil is time.Now

	mu     sync.Mutex
	notify chan struct{}
	latest map[l7.ObjectRef][]l7.ObjectStatus

	written map[l7.ObjectRef]writtenStatus // owned by Run
}

// writtenStatus is what was last found on (or written to) an object, and when.
type writtenStatus struct {
	fingerprint string
	at          time.Time
}

// errStatusSkipped says an object was not written because it does not exist (any more)
// or its kind has no client.
var errStatusSkipped = errors.New("status write skipped")

func (w *StatusWriter) signal() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.notify == nil {
		w.notify = make(chan struct{}, 1)
	}
	return w.notify
}

// Report replaces the statuses to write with statuses (l7.Result.Status; any order).
// It copies what it keeps and never blocks. Safe for concurrent use.
func (w *StatusWriter) Report(statuses []l7.ObjectStatus) {
	n := w.signal()
	latest := make(map[l7.ObjectRef][]l7.ObjectStatus, len(statuses))
	for _, st := range statuses {
		st.Conditions = slices.Clone(st.Conditions)
		latest[st.Ref] = append(latest[st.Ref], st)
	}
	w.mu.Lock()
	w.latest = latest
	w.mu.Unlock()
	select {
	case n <- struct{}{}:
	default:
	}
}

// Run writes reported statuses until ctx ends, then returns nil. It fails at once when
// neither client is set.
func (w *StatusWriter) Run(ctx context.Context) error {
	if w.Gateway == nil && w.Istio == nil {
		return errors.New("status writer: a Gateway or Istio client is required")
	}
	n := w.signal()
	var (
		timer *time.Timer
		retry <-chan time.Time
		delay time.Duration
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n:
		case <-retry:
		}
		if ctx.Err() != nil {
			return nil
		}
		if timer != nil {
			timer.Stop()
			timer, retry = nil, nil
		}
		if w.flush(ctx) {
			delay = 0
			continue
		}
		delay = min(max(2*delay, statusRetryMin), statusRetryMax)
		timer = time.NewTimer(delay)
		retry = timer.C
	}
}

func (w *StatusWriter) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default()
	}
	return w.Logger
}

func (w *StatusWriter) clock() time.Time {
	if w.now == nil {
		return time.Now()
	}
	return w.now()
}

// flush writes the latest report's statuses that differ from what was last written and
// reports whether every write succeeded (skipped objects count as success).
func (w *StatusWriter) flush(ctx context.Context) bool {
	w.mu.Lock()
	latest := w.latest
	w.mu.Unlock()
	if w.written == nil {
		w.written = map[l7.ObjectRef]writtenStatus{}
	}
	for ref := range w.written {
		if _, ok := latest[ref]; !ok {
			delete(w.written, ref) // a re-created object must be checked again
		}
	}
	refs := make([]l7.ObjectRef, 0, len(latest))
	for ref := range latest {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b l7.ObjectRef) int {
		return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
	})
	ok := true
	for _, ref := range refs {
		if ctx.Err() != nil {
			return true // shutting down: nothing to retry
		}
		want := latest[ref]
		fp := fingerprint(want)
		now := w.clock()
		if prev, found := w.written[ref]; found && prev.fingerprint == fp && now.Sub(prev.at) < statusResync {
			continue
		}
		err := w.write(ctx, ref, want, now)
		switch {
		case err == nil:
			w.written[ref] = writtenStatus{fingerprint: fp, at: now}
		case errors.Is(err, errStatusSkipped):
			w.logger().Debug("status not written", "kind", ref.Kind, "namespace", ref.Namespace, "name", ref.Name, "err", err)
		default:
			ok = false
			w.logger().Warn("write status", "kind", ref.Kind, "namespace", ref.Namespace, "name", ref.Name, "err", err)
		}
	}
	return ok
}

// write brings one object's status to want, retrying on conflicts.
func (w *StatusWriter) write(ctx context.Context, ref l7.ObjectRef, want []l7.ObjectStatus, now time.Time) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return w.writeOnce(ctx, ref, want, now)
	})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errStatusSkipped, err)
	}
	return err
}

func (w *StatusWriter) writeOnce(ctx context.Context, ref l7.ObjectRef, want []l7.ObjectStatus, now time.Time) error {
	if ref.Kind == l7.KindHTTPRoute {
		if w.Gateway == nil {
			return fmt.Errorf("%w: no Gateway API client", errStatusSkipped)
		}
		return w.writeHTTPRoute(ctx, ref, want, now)
	}
	if w.Istio == nil {
		return fmt.Errorf("%w: no Istio client", errStatusSkipped)
	}
	conds, gen := want[0].Conditions, want[0].Generation
	switch ref.Kind {
	case l7.KindVirtualService:
		c := w.Istio.NetworkingV1().VirtualServices(ref.Namespace)
		return writeIstio(ctx, ref, c.Get, c.UpdateStatus,
			func(o *networkingv1.VirtualService) *istiometa.IstioStatus { return &o.Status }, conds, gen, now)
	case l7.KindDestinationRule:
		c := w.Istio.NetworkingV1().DestinationRules(ref.Namespace)
		return writeIstio(ctx, ref, c.Get, c.UpdateStatus,
			func(o *networkingv1.DestinationRule) *istiometa.IstioStatus { return &o.Status }, conds, gen, now)
	case l7.KindAuthorizationPolicy:
		c := w.Istio.SecurityV1().AuthorizationPolicies(ref.Namespace)
		return writeIstio(ctx, ref, c.Get, c.UpdateStatus,
			func(o *securityv1.AuthorizationPolicy) *istiometa.IstioStatus { return &o.Status }, conds, gen, now)
	}
	return fmt.Errorf("%w: kind %s is not written here", errStatusSkipped, ref.Kind)
}

// writeIstio does one read-modify-write of an Istio object's status conditions.
func writeIstio[T any](ctx context.Context, ref l7.ObjectRef,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	status func(T) *istiometa.IstioStatus,
	want []metav1.Condition, generation int64, now time.Time,
) error {
	obj, err := get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get %s %s/%s: %w", ref.Kind, ref.Namespace, ref.Name, err)
	}
	st := status(obj)
	merged := mergeIstioConditions(st.Conditions, want, generation, now)
	if istioConditionsEqual(st.Conditions, merged) {
		return nil
	}
	st.Conditions = merged
	if _, err := update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s %s/%s status: %w", ref.Kind, ref.Namespace, ref.Name, err)
	}
	return nil
}

// fingerprint is a canonical rendering of one object's wanted statuses, times excluded.
func fingerprint(want []l7.ObjectStatus) string {
	sorted := slices.Clone(want)
	slices.SortFunc(sorted, func(a, b l7.ObjectStatus) int { return strings.Compare(a.Parent, b.Parent) })
	var b strings.Builder
	for _, st := range sorted {
		b.WriteString(strconv.FormatInt(st.Generation, 10) + "\x00" + st.Parent + "\x00")
		for _, c := range st.Conditions {
			fmt.Fprintf(&b, "%s\x01%s\x01%s\x01%s\x01%d\x02", c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration)
		}
		b.WriteString("\x03")
	}
	return b.String()
}
