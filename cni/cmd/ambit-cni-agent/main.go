// Command ambit-cni-agent is Ambit's node agent: it runs in the node network namespace,
// receives pod events from the ambit-cni plugin on --cni-socket, enrols ambient pods
// into eBPF redirection (pins under --bpf-pin-dir) and hands them to ztunnel over ZDS on
// --zds-socket. The cluster config comes from --config-dir (file mode) or the
// Kubernetes API (--kubeconfig, or in-cluster); in Kubernetes mode it also installs the
// plugin into the node's CNI config (--install-cni) and annotates enrolled pods. Flags
// are those of notes/contracts.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/ambitmesh/ambit/cni/agent"
	"github.com/ambitmesh/ambit/cni/redirect"
	"github.com/ambitmesh/ambit/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "ambit-cni-agent:", err)
		os.Exit(1)
	}
}

// run parses args and runs the agent (and the CNI installer) until ctx ends.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ambit-cni-agent", flag.ContinueOnError)
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "name of this node")
	configDir := fs.String("config-dir", "", "directory of Kubernetes YAML (file config source)")
	zdsSocket := fs.String("zds-socket", wire.ZDSSocketPath, "ZDS socket to listen on (ztunnel connects)")
	cniSocket := fs.String("cni-socket", "/var/run/ambit/cni.sock", "socket to listen on for CNI plugin pod events")
	pinDir := fs.String("bpf-pin-dir", "", "bpffs directory for per-pod pins (default /sys/fs/bpf/ambit/<node>)")
	cgroupRoot := fs.String("cgroup-root", "", "cgroup v2 directory searched for pod cgroups (default: the cgroup v2 mount)")
	stateDir := fs.String("state-dir", "/var/lib/ambit/cni-agent", "directory for persisted pod state")
	probeSources := fs.String("probe-sources", "", "comma-separated IPv4 addresses whose traffic to pods bypasses capture (default: this netns's IPv4 addresses)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	kf := addKubeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	if *nodeName == "" {
		return errors.New("--node-name is required")
	}
	kubeMode, err := kf.mode(*configDir)
	if err != nil {
		return err
	}
	policy, err := agent.ParseZtunnelDownPolicy(kf.ztunnelDown)
	if err != nil {
		return fmt.Errorf("--ztunnel-down-policy: %w", err)
	}
	if *pinDir == "" {
		*pinDir = "/sys/fs/bpf/ambit/" + *nodeName
	}
	if *cgroupRoot == "" {
		if *cgroupRoot, err = redirect.CgroupV2Root(); err != nil {
			return err
		}
	}
	probes, err := parseProbeSources(*probeSources)
	if err != nil {
		return err
	}
	if _, err := redirect.MountBPFFS(*pinDir); err != nil {
		return err
	}
	cfg := agent.Config{
		NodeName: *nodeName, ConfigDir: *configDir, ZDSSocket: *zdsSocket, CNISocket: *cniSocket,
		CgroupRoot: *cgroupRoot, StateDir: *stateDir, ProbeSources: probes, ZtunnelDown: policy,
		Redirector: &redirector{m: &redirect.Manager{PinDir: *pinDir}}, Logger: log,
	}
	if kubeMode {
		if err := kf.kubeConfig(&cfg, log); err != nil {
			return err
		}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	log.Info("ambit-cni-agent starting", "node", *nodeName, "kubernetes", kubeMode, "pinDir", *pinDir, "cgroupRoot", *cgroupRoot, "probeSources", probes)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(ctx) })
	if kf.installCNI.value(kubeMode) {
		inst := kf.installer(*cniSocket, log)
		g.Go(func() error {
			if a.WaitServing(ctx) != nil {
				return nil // stopping before the agent served
			}
			return inst.Run(ctx)
		})
	}
	return g.Wait()
}

// parseProbeSources parses --probe-sources; empty means this netns's IPv4 addresses.
func parseProbeSources(s string) ([]netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return agent.HostIPv4s()
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("--probe-sources: %q is not an IPv4 address", f)
		}
		out = append(out, ip)
	}
	return out, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// redirector adapts redirect.Manager to agent.Redirector.
type redirector struct{ m *redirect.Manager }

func (r *redirector) Enrol(p agent.PodNet) (*os.File, error) {
	sm, err := r.m.Enrol(redirect.Pod{UID: p.UID, Netns: p.Netns, Cgroup: p.Cgroup, IP: p.IP, ProbeSources: p.ProbeSources})
	if err != nil {
		return nil, err
	}
	defer sm.Close() // the manager hands us the map; we keep only a file duplicate
	fd, err := syscall.Dup(sm.FD())
	if err != nil {
		return nil, fmt.Errorf("dup sockmap fd: %w", err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "sockmap-"+p.UID), nil
}

func (r *redirector) Unenrol(uid string) error     { return r.m.Unenrol(uid) }
func (r *redirector) StopCapture(uid string) error { return r.m.StopCapture(uid) }
func (r *redirector) Enrolled() ([]string, error)  { return r.m.Enrolled() }
