// Package mesh brings up a whole Ambit mesh on a local network-namespace cluster
// (e2e/cluster): istiod-lite in the fabric namespace, a node agent and a ztunnel per node,
// and pods enrolled through the real CNI plugin, started with the same flags the Helm
// charts give them. The demo, the benchmark and the e2e tests share it.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Options configure Start.
type Options struct {
	Name   string   // cluster name prefix, e.g. "ambit-demo"
	Bin    string   // directory holding istiod-lite, ztunnel, ambit-cni-agent, ambit-cni
	Nodes  []string // node names, e.g. node-a, node-b
	Logger *slog.Logger
	// ZtunnelArgs are extra flags for every ztunnel.
	ZtunnelArgs []string
	// Waypoints are the waypoints AddWaypoint may deploy: istiod-lite reads its tokens
	// file once, at start, so their service-account tokens are made then.
	Waypoints []WaypointSpec
}

// Node is one node's mesh processes.
type Node struct {
	*cluster.Node
	Dir              string // work dir: sockets, state, token
	Agent, Ztunnel   *cluster.Process
	zdsSock, cniSock string
	ztunnelArgv      []string
}

// Mesh is a running mesh. Close removes everything it made.
type Mesh struct {
	Cluster *cluster.Cluster
	Dir     string // run work dir: config/, ca/, logs/, per-node dirs
	Config  *Config
	Nodes   map[string]*Node
	Istiod  *cluster.Process
	CA      *ca.Authority
	opts    Options
	bpfDir  string
	log     *slog.Logger
}

const trustDomain = spiffe.DefaultTrustDomain

// Start builds the cluster and starts the control plane and the node components, then
// waits until every ztunnel is ready. On failure everything made so far is removed.
func Start(ctx context.Context, opts Options) (m *Mesh, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := cluster.New(opts.Name)
	if err != nil {
		return nil, fmt.Errorf("start mesh: %w", err)
	}
	m = &Mesh{Cluster: c, Nodes: map[string]*Node{}, opts: opts, log: opts.Logger,
		Dir: filepath.Join(os.TempDir(), c.RunID)}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Close())
		}
	}()
	if err := m.prepare(); err != nil {
		return m, err
	}
	if err := m.startIstiod(ctx); err != nil {
		return m, err
	}
	for _, name := range opts.Nodes {
		if err := m.startNode(ctx, name); err != nil {
			return m, err
		}
	}
	for _, n := range m.Nodes {
		if err := m.waitReady(ctx, n); err != nil {
			return m, err
		}
	}
	return m, nil
}

// prepare makes the work dir, the CA (so ztunnels can trust its root from the start), the
// config dir and a private bpffs for the node agents' pins.
func (m *Mesh) prepare() error {
	for _, d := range []string{m.Dir, m.path("config"), m.path("logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("prepare mesh: %w", err)
		}
	}
	authority, err := ca.LoadOrCreate(m.path("ca"), trustDomain)
	if err != nil {
		return fmt.Errorf("prepare mesh: %w", err)
	}
	m.CA = authority
	m.Config = &Config{Dir: m.path("config")}
	m.bpfDir = filepath.Join("/run", "ambit-bpf-"+m.Cluster.RunID)
	if err := os.MkdirAll(m.bpfDir, 0o700); err != nil {
		return fmt.Errorf("prepare mesh: %w", err)
	}
	if err := unix.Mount("bpf", m.bpfDir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("prepare mesh: mount bpffs: %w", err)
	}
	return nil
}

func (m *Mesh) path(p ...string) string { return filepath.Join(append([]string{m.Dir}, p...)...) }

// LogPath is where the named process logs.
func (m *Mesh) LogPath(name string) string { return m.path("logs", name+".log") }

// Close stops every process and removes namespaces, cgroups, pins and the work dir. The
// work dir is kept when keepLogs is set via KeepLogs.
func (m *Mesh) Close() error {
	err := m.Cluster.Close()
	if m.bpfDir != "" {
		if uerr := unix.Unmount(m.bpfDir, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) && !errors.Is(uerr, unix.ENOENT) {
			err = errors.Join(err, fmt.Errorf("unmount bpffs: %w", uerr))
		}
		os.Remove(m.bpfDir)
	}
	return err
}

// RemoveWorkDir deletes the run's work dir (logs, config, CA).
func (m *Mesh) RemoveWorkDir() error { return os.RemoveAll(m.Dir) }

// Poll calls cond every 50ms until it returns nil, ctx ends or timeout passes; the last
// error is returned, wrapped with the reason the wait ended.
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
