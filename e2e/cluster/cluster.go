package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ErrClosed is returned by every Cluster method called after Close.
var ErrClosed = errors.New("cluster closed")

// FabricBridge is the name of the bridge in the fabric namespace.
const FabricBridge = "br0"

// Cluster is one run of the local topology. Its methods are safe for
// concurrent use, and Close may be called from a signal handler while other
// methods run.
type Cluster struct {
	// RunID is the unique run name: New's name plus a short random suffix.
	// It prefixes every namespace name.
	RunID string
	// FabricNetns is the fabric namespace path, /run/netns/<RunID>-fabric.
	FabricNetns string
	// BridgeIP is the fabric bridge address, 10.10.0.1 (istiod-lite listens here).
	BridgeIP netip.Addr
	// CgroupRoot is this run's cgroup v2 directory, <cgroup2 mount>/ambit-<RunID>;
	// pod cgroups are <CgroupRoot>/kubepods/pod<uid>. Pass it as the node
	// agent's --cgroup-root.
	CgroupRoot string

	nsenter   string
	ledgerDir string

	mu     sync.Mutex
	closed bool
	led    ledger
	nodes  []*Node
	pods   []*Pod
	procs  []*Process
}

// New builds a cluster's fabric: the namespace "<RunID>-fabric" holding
// bridge br0 with 10.10.0.1/24, and the empty cgroup root. name must be a
// lowercase DNS-style name of at most 32 characters; the run ID appends a
// random suffix. It needs root, nsenter in PATH and a cgroup v2 hierarchy.
// On failure everything created so far is removed.
func New(name string) (*Cluster, error) {
	if err := validName("cluster", name); err != nil || len(name) > 32 {
		return nil, fmt.Errorf("new cluster: %w", errors.Join(err, ErrInvalidName))
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, fmt.Errorf("new cluster: %w", err)
	}
	cg, err := Cgroup2Mount()
	if err != nil {
		return nil, fmt.Errorf("new cluster: %w", err)
	}
	runID := newRunID(name)
	c := &Cluster{
		RunID:       runID,
		FabricNetns: filepath.Join(NetnsDir, runID+"-fabric"),
		BridgeIP:    FabricGateway,
		CgroupRoot:  filepath.Join(cg, "ambit-"+runID),
		nsenter:     nsenter,
		ledgerDir:   LedgerDir,
	}
	c.led = ledger{RunID: runID, OwnerPID: os.Getpid(), OwnerStart: procStartTime(os.Getpid()), CgroupRoot: c.CgroupRoot}
	if err := c.build(); err != nil {
		return nil, errors.Join(fmt.Errorf("new cluster: %w", err), c.Close())
	}
	return c, nil
}

func (c *Cluster) build() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.led.save(c.ledgerDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.CgroupRoot, "kubepods"), 0o755); err != nil {
		return fmt.Errorf("create cgroup root: %w", err)
	}
	if err := c.createNetnsLocked(c.FabricNetns); err != nil {
		return err
	}
	return withHandle(c.FabricNetns, func(h *netlink.Handle) error {
		if err := setUp(h, "lo"); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: FabricBridge}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge %s: %w", FabricBridge, err)
		}
		if err := addAddr(h, FabricBridge, netip.PrefixFrom(c.BridgeIP, fabricPrefix.Bits())); err != nil {
			return err
		}
		return setUp(h, FabricBridge)
	})
}

// createNetnsLocked records the namespace in the ledger, then creates it.
func (c *Cluster) createNetnsLocked(path string) error {
	c.led.Netns = append(c.led.Netns, path)
	if err := c.led.save(c.ledgerDir); err != nil {
		return err
	}
	return createNetns(path)
}

// RegisterCleanupPath records a path (for example a bpffs pin directory such
// as /sys/fs/bpf/ambit/<RunID>-node-a) that Close removes recursively after
// stopping processes and before removing cgroups and namespaces. The path
// must be absolute, clean and at least three levels deep.
func (c *Cluster) RegisterCleanupPath(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	l := c.led
	l.Paths = append(append([]string(nil), c.led.Paths...), path)
	if err := validLedger(&l); err != nil {
		return fmt.Errorf("register cleanup path: %w", err)
	}
	c.led.Paths = l.Paths
	return c.led.save(c.ledgerDir)
}

// Nodes returns the nodes added so far, in order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// StartFabric runs argv in the fabric namespace (`nsenter --net=<fabric> --`),
// with stdout and stderr appended to logPath ("" discards them). The process
// gets SIGTERM (then SIGKILL after StopGrace) when ctx ends, and Close stops it.
func (c *Cluster) StartFabric(ctx context.Context, logPath string, argv ...string) (*Process, error) {
	return c.start(ctx, c.FabricNetns, nil, logPath, argv)
}

// Dial connects from inside the fabric namespace (see Dial), for example to
// istiod-lite on 10.10.0.1.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return Dial(ctx, c.FabricNetns, network, addr)
}

// start runs argv through nsenter in netnsPath and, when cgroupDir is not
// nil, inside that cgroup from the first instruction.
func (c *Cluster) start(ctx context.Context, netnsPath string, cgroupDir *string, logPath string, argv []string) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	cmd, release, err := c.command(ctx, netnsPath, cgroupDir, argv)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer release()
	p, err := startProcess(cmd, logPath, argv)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// command builds the nsenter command for argv in netnsPath and, when cgroupDir is not
// nil, places it in that cgroup from its first instruction (CLONE_INTO_CGROUP). release
// closes the cgroup fd once the process has started.
func (c *Cluster) command(ctx context.Context, netnsPath string, cgroupDir *string, argv []string) (*exec.Cmd, func(), error) {
	cmd, err := nsenterCmd(ctx, c.nsenter, netnsPath, argv)
	if err != nil {
		return nil, nil, err
	}
	if cgroupDir == nil {
		return cmd, func() {}, nil
	}
	f, err := os.Open(*cgroupDir)
	if err != nil {
		return nil, nil, fmt.Errorf("open cgroup: %w", err)
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(f.Fd())
	return cmd, func() { f.Close() }, nil
}

// run runs argv like start, waits, and returns its stdout (see runOutput).
func (c *Cluster) run(ctx context.Context, netnsPath string, cgroupDir *string, argv []string) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.mu.Unlock()
	cmd, release, err := c.command(ctx, netnsPath, cgroupDir, argv)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	defer release()
	return runOutput(cmd, argv)
}

// Close stops every process the cluster started (SIGTERM, SIGKILL after
// StopGrace), kills whatever else is left in its cgroups and namespaces,
// removes registered cleanup paths, the cgroup tree and all namespaces
// (which removes every veth and bridge with them), then the ledger. It is
// idempotent and safe to call concurrently, for example from a signal
// handler; a later call retries whatever an earlier one failed to remove.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Stop()
		}()
	}
	wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.led.teardown(); err != nil {
		_ = c.led.save(c.ledgerDir)
		return fmt.Errorf("close cluster %s: %w", c.RunID, err)
	}
	c.led.Netns, c.led.Paths = nil, nil
	if err := os.Remove(ledgerPath(c.ledgerDir, c.RunID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("close cluster %s: %w", c.RunID, err)
	}
	return nil
}

// withHandle runs fn with a netlink handle bound to the namespace at path,
// closing the handle (and with it the namespace reference) afterwards.
func withHandle(path string, fn func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	defer h.Close()
	return fn(h)
}
