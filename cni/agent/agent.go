// Package agent is Ambit's node agent (ambit-cni-agent): it receives pod events from the
// CNI plugin, decides from the cluster config which pods are ambient (F-ENROL-1), enrols
// them through a Redirector (eBPF redirection, cni/redirect) and hands each enrolled
// pod's netns and SOCKMAP to ztunnel over ZDS (F-ENROL-4, pkg/zds). The config comes from
// a directory of YAML (file mode, pkg/kubefile) or a Source (Kubernetes mode, cni/kube);
// in Kubernetes mode an Annotator marks pods ztunnel has acknowledged. It keeps the set
// of registered pods on disk so a restart recovers them, and re-evaluates every
// registered pod whenever the config changes, enrolling and unenrolling live.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/zds"
)

// PodNet is what redirection needs to know about a pod.
type PodNet struct {
	UID          string       // pod UID, the key of the pod's pins
	Netns        string       // path of the pod network namespace
	Cgroup       string       // pod cgroup v2 directory
	IP           netip.Addr   // pod IPv4 address
	ProbeSources []netip.Addr // node addresses whose inbound traffic bypasses capture
}

// Redirector installs and removes a pod's traffic redirection (cni/redirect.Manager
// behind an adapter; a fake in tests).
type Redirector interface {
	// Enrol redirects the pod's traffic; idempotent. It returns the pod's SOCKMAP as a
	// file owned by the caller, or nil when redirection uses none.
	Enrol(p PodNet) (sockmap *os.File, err error)
	// Unenrol removes the pod's redirection; idempotent.
	Unenrol(uid string) error
	// Enrolled lists the UIDs with redirection installed (from the pins).
	Enrolled() ([]string, error)
}

// CaptureStopper is optionally implemented by a Redirector that can stop capturing new
// connections while keeping captured ones flowing (redirection.md's graceful unenrol:
// connect4 detached first). The agent calls it before telling ztunnel.
type CaptureStopper interface {
	StopCapture(uid string) error
}

// Source delivers cluster config snapshots (Pods and Namespaces at least): once at
// start and after every change, from one goroutine, until ctx ends. cni/kube.Source
// implements it over client-go informers.
type Source interface {
	Run(ctx context.Context, onChange func(*kubefile.Snapshot)) error
}

// Annotator records on the Kubernetes Pod whether its redirection is live (annotation
// ambient.istio.io/redirection=enabled, removed when false). cni/kube.Annotator
// implements it; uid guards against a same-named newer pod.
type Annotator interface {
	SetRedirection(ctx context.Context, namespace, name, uid string, enabled bool) error
}

// Config configures an Agent. Paths are those of contracts.md's ambit-cni-agent flags.
// Exactly one of ConfigDir and Source is set.
type Config struct {
	NodeName     string
	ConfigDir    string // Kubernetes YAML (pkg/kubefile); file mode
	Source       Source // Kubernetes mode (cni/kube.Source)
	ZDSSocket    string // listens; ztunnel connects
	CNISocket    string // listens; the CNI plugin posts pod events
	CgroupRoot   string // where pod cgroups are searched
	StateDir     string // registered pods persist here (pods.json)
	ProbeSources []netip.Addr
	Redirector   Redirector
	Logger       *slog.Logger
	// HandoffTimeout bounds the wait for ztunnel's ack of one pod; 0 means 10s.
	HandoffTimeout time.Duration
	// Resync re-evaluates registered pods periodically (retrying failed enrolments);
	// 0 means 30s.
	Resync time.Duration
	// ZtunnelDown is what enrolment does without a ztunnel acknowledgement (F-PLUS-3);
	// "" means ZtunnelDownOpen.
	ZtunnelDown ZtunnelDownPolicy
	// PodWait bounds how long a CNI ADD waits for its pod to appear in the config (an
	// informer may lag the kubelet by a few milliseconds). 0 means 5s with a Source and
	// no wait in file mode; negative means no wait.
	PodWait time.Duration
	// Annotator, when set, annotates pods once ztunnel acknowledges them and removes the
	// annotation when they leave the mesh (Kubernetes mode). Failures are logged and
	// retried every AnnotateInterval; they never block pod events.
	Annotator Annotator
	// AnnotateInterval is the annotation retry and ack polling period; 0 means 1s.
	AnnotateInterval time.Duration
}

// Agent is the node agent. Build it with New and run it with Run.
type Agent struct {
	cfg Config
	log *slog.Logger
	zds *zds.Server

	mu   sync.Mutex      // serialises pod operations and guards pods
	pods map[string]*pod // registered pods by uid

	snapMu    sync.Mutex
	snap      *kubefile.Snapshot
	snapNext  chan struct{} // closed (and replaced) at every snapshot; guarded by snapMu
	changed   chan struct{} // capacity 1: the snapshot changed
	ready     chan struct{} // closed at the first snapshot
	readyOnce sync.Once
	listening chan struct{} // closed once the CNI socket accepts connections

	annotKick chan struct{}         // capacity 1: pod states changed
	annotSent map[string]annotPatch // by uid; owned by annotateLoop
}

// New validates cfg and builds an agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
	switch {
	case (cfg.ConfigDir == "") == (cfg.Source == nil):
		return nil, errors.New("new agent: exactly one of config dir and config source is required")
	case cfg.ZDSSocket == "", cfg.CNISocket == "", cfg.StateDir == "", cfg.CgroupRoot == "":
		return nil, errors.New("new agent: zds socket, cni socket, cgroup root and state dir are required")
	case cfg.Redirector == nil:
		return nil, errors.New("new agent: redirector is required")
	}
	policy, err := ParseZtunnelDownPolicy(string(cfg.ZtunnelDown))
	if err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	cfg.ZtunnelDown = policy
	if cfg.PodWait == 0 && cfg.Source != nil {
		cfg.PodWait = 5 * time.Second
	}
	if cfg.AnnotateInterval <= 0 {
		cfg.AnnotateInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HandoffTimeout == 0 {
		cfg.HandoffTimeout = 10 * time.Second
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	return &Agent{
		cfg:       cfg,
		log:       cfg.Logger,
		zds:       zds.NewServer(cfg.ZDSSocket, cfg.Logger.With("component", "zds")),
		pods:      map[string]*pod{},
		snapNext:  make(chan struct{}),
		changed:   make(chan struct{}, 1),
		ready:     make(chan struct{}),
		listening: make(chan struct{}),
		annotKick: make(chan struct{}, 1),
		annotSent: map[string]annotPatch{},
	}, nil
}

// Run recovers state, then serves the config source (file watcher or Source), the CNI
// event socket, the ZDS socket, the reconcile loop and, with an Annotator, the
// annotation loop until ctx ends or one of them fails.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.recoverState(); err != nil {
		return err
	}
	defer a.zds.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.zds.Run(ctx) })
	g.Go(func() error {
		if a.cfg.Source != nil {
			return a.cfg.Source.Run(ctx, a.setSnapshot)
		}
		w := &kubefile.Watcher{Dir: a.cfg.ConfigDir, OnChange: a.setSnapshot, Logger: a.log.With("component", "config")}
		return w.Run(ctx)
	})
	g.Go(func() error { return a.reconcileLoop(ctx) })
	if a.cfg.Annotator != nil {
		g.Go(func() error { return a.annotateLoop(ctx) })
	}
	g.Go(func() error { return a.serveCNI(ctx) })
	return g.Wait()
}

func (a *Agent) setSnapshot(s *kubefile.Snapshot) {
	a.snapMu.Lock()
	a.snap = s
	close(a.snapNext)
	a.snapNext = make(chan struct{})
	a.snapMu.Unlock()
	a.readyOnce.Do(func() { close(a.ready) })
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *Agent) snapshot() *kubefile.Snapshot {
	s, _ := a.snapshotAndNext()
	return s
}

// snapshotAndNext returns the current snapshot and a channel closed when the next one
// arrives.
func (a *Agent) snapshotAndNext() (*kubefile.Snapshot, <-chan struct{}) {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	return a.snap, a.snapNext
}

// waitPod waits, up to Config.PodWait, until the config holds the pod of a CNI ADD, so
// a pod the informer has not seen yet is still enrolled before its containers start.
// Giving up is not an error: the pod is registered unenrolled and a later snapshot
// enrols it live.
func (a *Agent) waitPod(ctx context.Context, uid, namespace, name string) {
	if a.cfg.PodWait <= 0 {
		return
	}
	timer := time.NewTimer(a.cfg.PodWait)
	defer timer.Stop()
	for {
		snap, next := a.snapshotAndNext()
		if configPod(snap, uid, namespace, name) != nil {
			return
		}
		select {
		case <-next:
		case <-timer.C:
			a.log.Warn("pod not in config yet; registering it unenrolled", "pod", namespace+"/"+name, "uid", uid, "waited", a.cfg.PodWait)
			return
		case <-ctx.Done():
			return
		}
	}
}

// WaitServing blocks until the agent serves pod events (the CNI socket accepts
// connections and the first config snapshot is loaded), so a CNI installer can chain
// the plugin without pods hitting a missing agent; it fails only when ctx ends first.
func (a *Agent) WaitServing(ctx context.Context) error {
	for _, c := range []chan struct{}{a.listening, a.ready} {
		select {
		case <-c:
		case <-ctx.Done():
			return fmt.Errorf("wait for agent: %w", ctx.Err())
		}
	}
	return nil
}

// waitReady blocks until the first config snapshot is loaded or ctx ends.
func (a *Agent) waitReady(ctx context.Context) error {
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for config: %w", ctx.Err())
	}
}

// reconcileLoop re-evaluates every registered pod after each config change and every
// Resync period.
func (a *Agent) reconcileLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.changed:
		case <-t.C:
			if a.snapshot() == nil {
				continue
			}
		}
		a.reconcileAll(ctx)
	}
}
