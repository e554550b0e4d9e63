// Package agent is Ambit's node agent (ambit-cni-agent): it receives pod events from the
// CNI plugin, decides from the file config which pods are ambient (F-ENROL-1), enrols
// them through a Redirector (eBPF redirection, cni/redirect) and hands each enrolled
// pod's netns and SOCKMAP to ztunnel over ZDS (F-ENROL-4, pkg/zds). It keeps the set of
// registered pods on disk so a restart recovers them, and re-evaluates every registered
// pod whenever the config changes, enrolling and unenrolling live.
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

// Config configures an Agent. Paths are those of contracts.md's ambit-cni-agent flags.
type Config struct {
	NodeName     string
	ConfigDir    string // Kubernetes YAML (pkg/kubefile)
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
	changed   chan struct{} // capacity 1: the snapshot changed
	ready     chan struct{} // closed at the first snapshot
	readyOnce sync.Once
}

// New validates cfg and builds an agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.ConfigDir == "", cfg.ZDSSocket == "", cfg.CNISocket == "", cfg.StateDir == "", cfg.CgroupRoot == "":
		return nil, errors.New("new agent: config dir, zds socket, cni socket, cgroup root and state dir are required")
	case cfg.Redirector == nil:
		return nil, errors.New("new agent: redirector is required")
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
		cfg:     cfg,
		log:     cfg.Logger,
		zds:     zds.NewServer(cfg.ZDSSocket, cfg.Logger.With("component", "zds")),
		pods:    map[string]*pod{},
		changed: make(chan struct{}, 1),
		ready:   make(chan struct{}),
	}, nil
}

// Run recovers state, then serves the config watcher, the CNI event socket, the ZDS
// socket and the reconcile loop until ctx ends or one of them fails.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.recoverState(); err != nil {
		return err
	}
	defer a.zds.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.zds.Run(ctx) })
	g.Go(func() error {
		w := &kubefile.Watcher{Dir: a.cfg.ConfigDir, OnChange: a.setSnapshot, Logger: a.log.With("component", "config")}
		return w.Run(ctx)
	})
	g.Go(func() error { return a.reconcileLoop(ctx) })
	g.Go(func() error { return a.serveCNI(ctx) })
	return g.Wait()
}

func (a *Agent) setSnapshot(s *kubefile.Snapshot) {
	a.snapMu.Lock()
	a.snap = s
	a.snapMu.Unlock()
	a.readyOnce.Do(func() { close(a.ready) })
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *Agent) snapshot() *kubefile.Snapshot {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	return a.snap
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
