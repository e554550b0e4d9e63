package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"istio.io/istio/pkg/zdsapi"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/pkg/zds"
)

// pod is a registered pod: one the CNI plugin announced and has not deleted.
type pod struct {
	UID         string   `json:"uid"`
	Name        string   `json:"name"`
	Namespace   string   `json:"namespace"`
	Netns       string   `json:"netns"`
	IPs         []string `json:"ips"`
	ContainerID string   `json:"containerID"`
	// Enrolled is true once redirection is installed and the pod is handed to the ZDS
	// server in this agent process.
	Enrolled bool `json:"enrolled"`
	// ServiceAccount is the identity handed to ztunnel.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// pinned: redirection may be installed (found at recovery, or an unenrol failed).
	pinned bool
}

// addPod registers the pod and enrols it when the config says so (CNI ADD).
func (a *Agent) addPod(ctx context.Context, r podapi.AddRequest) error {
	a.waitPod(ctx, r.UID, r.Namespace, r.Name)
	defer a.kickAnnotations()
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.pods[r.UID]; old != nil && old.ContainerID != r.ContainerID && (old.Enrolled || old.pinned) {
		// A new sandbox for the same pod: the old one's redirection goes first.
		if err := a.unenrol(ctx, old); err != nil {
			return fmt.Errorf("replace sandbox of %s/%s: %w", r.Namespace, r.Name, err)
		}
	}
	p := &pod{UID: r.UID, Name: r.Name, Namespace: r.Namespace, Netns: r.Netns, IPs: r.IPs, ContainerID: r.ContainerID}
	if old := a.pods[r.UID]; old != nil && old.ContainerID == r.ContainerID {
		p.pinned = old.Enrolled || old.pinned
	}
	a.pods[r.UID] = p
	err := a.apply(ctx, p)
	if serr := a.saveLocked(); serr != nil && err == nil {
		err = serr
	}
	return err
}

// delPod unenrols and forgets the pod (CNI DEL). Unknown pods and DELs for an older
// sandbox are no-ops.
func (a *Agent) delPod(ctx context.Context, r podapi.DelRequest) error {
	defer a.kickAnnotations()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pods[r.UID]
	if p == nil && r.UID == "" {
		for _, q := range a.pods {
			if q.ContainerID == r.ContainerID {
				p = q
				break
			}
		}
	}
	if p == nil {
		return nil
	}
	if r.ContainerID != "" && p.ContainerID != "" && r.ContainerID != p.ContainerID {
		a.log.Info("ignoring DEL for an older sandbox", "uid", p.UID, "containerID", r.ContainerID)
		return nil
	}
	if p.Enrolled || p.pinned {
		if err := a.unenrol(ctx, p); err != nil {
			return err
		}
	}
	delete(a.pods, p.UID)
	return a.saveLocked()
}

// reconcileAll applies the current config to every registered pod and persists the
// result. Failures are logged; the next change or resync retries.
func (a *Agent) reconcileAll(ctx context.Context) {
	defer a.kickAnnotations()
	a.mu.Lock()
	defer a.mu.Unlock()
	dirty := false
	for _, p := range a.pods {
		before := p.Enrolled
		if err := a.apply(ctx, p); err != nil {
			a.log.Warn("reconcile pod failed", "pod", p.Namespace+"/"+p.Name, "uid", p.UID, "err", err)
		}
		dirty = dirty || before != p.Enrolled
	}
	if dirty {
		if err := a.saveLocked(); err != nil {
			a.log.Error("save state failed", "err", err)
		}
	}
}

// apply brings one pod to the state the config wants.
func (a *Agent) apply(ctx context.Context, p *pod) error {
	snap := a.snapshot()
	cp := configPod(snap, p.UID, p.Namespace, p.Name)
	var d Decision
	if snap != nil {
		d = Decide(snap.Namespace(p.Namespace), cp)
	}
	switch {
	case d.Enrol && (!p.Enrolled || p.ServiceAccount != serviceAccount(cp)):
		a.log.Info("enrolling pod", "pod", p.Namespace+"/"+p.Name, "uid", p.UID, "reason", d.Reason)
		return a.enrol(ctx, p, serviceAccount(cp))
	case !d.Enrol && (p.Enrolled || p.pinned):
		a.log.Info("unenrolling pod", "pod", p.Namespace+"/"+p.Name, "uid", p.UID, "reason", d.Reason)
		return a.unenrol(ctx, p)
	}
	return nil
}

// enrol installs redirection and hands the pod to ztunnel. A rejection by ztunnel
// removes the redirection again (no capture without a proxy that accepted the pod); a
// missing or silent ztunnel is handled by Config.ZtunnelDown (F-PLUS-3).
func (a *Agent) enrol(ctx context.Context, p *pod, sa string) error {
	closed := a.cfg.ZtunnelDown == ZtunnelDownClosed
	if closed && !a.zds.Connected() {
		return fmt.Errorf("enrol %s: %w: no ztunnel connected", p.UID, ErrZtunnelDown)
	}
	ip, ok := firstIPv4(p.IPs)
	if !ok {
		return fmt.Errorf("enrol %s: no IPv4 address in %v (redirection is IPv4-only)", p.UID, p.IPs)
	}
	cg, err := FindCgroup(a.cfg.CgroupRoot, p.UID)
	if err != nil {
		return fmt.Errorf("enrol %s: %w", p.UID, err)
	}
	netns, err := os.Open(p.Netns)
	if err != nil {
		return fmt.Errorf("enrol %s: open netns: %w", p.UID, err)
	}
	defer netns.Close()
	p.pinned = true
	sockmap, err := a.cfg.Redirector.Enrol(PodNet{UID: p.UID, Netns: p.Netns, Cgroup: cg, IP: ip, ProbeSources: a.cfg.ProbeSources})
	if err != nil {
		return fmt.Errorf("enrol %s: redirect: %w", p.UID, err)
	}
	if sockmap != nil {
		defer sockmap.Close()
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HandoffTimeout)
	defer cancel()
	w := zds.Workload{
		UID:     p.UID,
		Info:    &zdsapi.WorkloadInfo{Name: p.Name, Namespace: p.Namespace, ServiceAccount: sa},
		Netns:   netns,
		SockMap: sockmap,
	}
	err = a.zds.Add(hctx, w)
	if err == nil && closed && !a.zds.Acked(p.UID) {
		err = fmt.Errorf("%w: ztunnel went away before acknowledging", ErrZtunnelDown)
	}
	if err != nil && closed && !errors.Is(err, zds.ErrRejected) && !errors.Is(err, ErrZtunnelDown) {
		err = fmt.Errorf("%w: %w", ErrZtunnelDown, err)
	}
	if err != nil && !closed && !errors.Is(err, zds.ErrRejected) && ctx.Err() == nil {
		// Open policy: ztunnel is connected but silent. The ZDS server keeps the
		// workload and delivers it on the next (re)connection.
		a.log.Warn("ztunnel did not acknowledge in time; pod stays enrolled for later hand-off", "uid", p.UID, "err", err)
		err = nil
	}
	if err != nil {
		p.Enrolled = true // so unenrol runs fully
		if uerr := a.unenrol(ctx, p); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return fmt.Errorf("enrol %s: hand to ztunnel: %w", p.UID, err)
	}
	p.Enrolled, p.ServiceAccount = true, sa
	if !a.zds.Connected() {
		a.log.Info("ztunnel not connected; pod queued for its next snapshot", "uid", p.UID)
	}
	return nil
}

// unenrol takes the pod out of the mesh: capture stops first when the redirector can
// (CaptureStopper), then ztunnel forgets the pod (ZDS Del), then redirection goes.
func (a *Agent) unenrol(ctx context.Context, p *pod) error {
	if cs, ok := a.cfg.Redirector.(CaptureStopper); ok {
		if err := cs.StopCapture(p.UID); err != nil {
			a.log.Warn("stop capture failed; removing redirection anyway", "uid", p.UID, "err", err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HandoffTimeout)
	defer cancel()
	if err := a.zds.Del(hctx, p.UID); err != nil {
		// ztunnel will drop it at its next snapshot; redirection must still go.
		a.log.Warn("ztunnel did not confirm pod removal", "uid", p.UID, "err", err)
	}
	p.Enrolled = false
	if err := a.cfg.Redirector.Unenrol(p.UID); err != nil {
		p.pinned = true
		return fmt.Errorf("unenrol %s: %w", p.UID, err)
	}
	p.pinned = false
	return nil
}

// statuses reports every registered pod for GET /v1/pods.
func (a *Agent) statuses() []podapi.PodStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]podapi.PodStatus, 0, len(a.pods))
	for _, p := range a.pods {
		st := podapi.PodStatus{UID: p.UID, Name: p.Name, Namespace: p.Namespace, Enrolled: p.Enrolled, Acked: p.Enrolled && a.zds.Acked(p.UID)}
		if st.Acked {
			st.Annotations = map[string]string{wire.AnnotationRedirection: wire.RedirectionEnabled}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
