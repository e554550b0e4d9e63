package agent

import (
	"context"
	"time"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// annotateRepeat is how long a successful patch suppresses an identical one while the
// config (informer) has not caught up with it yet.
const annotateRepeat = 5 * time.Second

// annotateTimeout bounds one patch.
const annotateTimeout = 10 * time.Second

// annotPatch is the last successful patch of one pod.
type annotPatch struct {
	enabled bool
	at      time.Time
}

// annotChange is one patch to make.
type annotChange struct {
	namespace, name, uid string
	enabled              bool
}

// kickAnnotations asks the annotation loop for a pass soon (never blocks).
func (a *Agent) kickAnnotations() {
	select {
	case a.annotKick <- struct{}{}:
	default:
	}
}

// annotateLoop keeps the pods' ambient.istio.io/redirection annotation in line with the
// agent's state (F-ENROL-4, as Istio's node agent): it compares, for every pod in the
// config, the annotation it carries with the one it should carry, and patches the
// differences. It runs after every pod event and reconcile (so after every config
// change) and every
// AnnotateInterval, which also notices ztunnel's acks (replayed snapshots included) and
// retries failed patches.
func (a *Agent) annotateLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.AnnotateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.annotKick:
		case <-t.C:
		}
		a.syncAnnotations(ctx)
	}
}

// syncAnnotations computes the needed patches under the pod lock, then sends them
// without it, so pod events never wait on the API server.
func (a *Agent) syncAnnotations(ctx context.Context) {
	changes := a.annotationChanges()
	now := time.Now()
	for _, c := range changes {
		if last, ok := a.annotSent[c.uid]; ok && last.enabled == c.enabled && now.Sub(last.at) < annotateRepeat {
			continue // sent; the config has not caught up yet
		}
		pctx, cancel := context.WithTimeout(ctx, annotateTimeout)
		err := a.cfg.Annotator.SetRedirection(pctx, c.namespace, c.name, c.uid, c.enabled)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("annotate pod failed; will retry", "pod", c.namespace+"/"+c.name, "uid", c.uid, "enabled", c.enabled, "err", err)
			delete(a.annotSent, c.uid)
			continue
		}
		a.log.Info("annotated pod", "pod", c.namespace+"/"+c.name, "uid", c.uid, wire.AnnotationRedirection, annotationValue(c.enabled))
		a.annotSent[c.uid] = annotPatch{enabled: c.enabled, at: now}
	}
	pending := make(map[string]bool, len(changes))
	for _, c := range changes {
		pending[c.uid] = true
	}
	for uid := range a.annotSent {
		if !pending[uid] {
			delete(a.annotSent, uid) // the config shows the patch (or the pod is gone)
		}
	}
}

// annotationChanges lists the config pods whose annotation differs from what it should
// be: "enabled" once the pod is enrolled and acknowledged by the connected ztunnel;
// removed once the pod is neither registered nor meant to be enrolled. A registered
// pod the config still wants in the mesh keeps its annotation while ztunnel is away or
// an enrolment is retried, so the control plane does not see it flap.
func (a *Agent) annotationChanges() []annotChange {
	snap := a.snapshot()
	if snap == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []annotChange
	for _, cp := range snap.Pods {
		uid := string(cp.UID)
		if uid == "" {
			continue
		}
		value, has := cp.Annotations[wire.AnnotationRedirection]
		reg := a.pods[uid]
		switch {
		case reg != nil && reg.Enrolled && a.zds.Acked(uid):
			if value != wire.RedirectionEnabled {
				out = append(out, annotChange{cp.Namespace, cp.Name, uid, true})
			}
		case reg != nil && (reg.Enrolled || reg.pinned || Decide(snap.Namespace(cp.Namespace), cp).Enrol):
			// keep whatever it carries
		case has:
			out = append(out, annotChange{cp.Namespace, cp.Name, uid, false})
		}
	}
	return out
}

func annotationValue(enabled bool) string {
	if enabled {
		return wire.RedirectionEnabled
	}
	return "<removed>"
}
