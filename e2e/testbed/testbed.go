// Package testbed is the e2e harness's local Kubernetes cluster: a fabric network
// namespace holding a real etcd, kube-apiserver and kube-controller-manager (e2e/kube),
// network-namespace nodes (e2e/cluster) each with a kubelet (e2e/kubelet) that runs
// pods through the reference bridge CNI plugin, and a trivial scheduler. Ambit is then
// installed into it from the Helm charts (see Install).
package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/kube"
	"github.com/ambitmesh/ambit/e2e/kubelet"
)

// Options configures Start.
type Options struct {
	// Name prefixes the run ID (namespaces, cgroups); lowercase, at most 32 characters.
	Name string
	// Nodes are the node names, e.g. node-a and node-b.
	Nodes []string
	// KubeBin is the directory hack/build-kube-tools.sh prints (the kube binaries, and
	// the CNI plugins in its cni/ subdirectory).
	KubeBin string
	// Bin holds Ambit's binaries (make build's bin/), which containers run.
	Bin string
	// Dir receives logs and the control plane's files (usually t.TempDir()).
	Dir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Testbed is a running cluster. Close tears everything down.
type Testbed struct {
	Cluster *cluster.Cluster
	Kube    *kube.Cluster
	Client  kubernetes.Interface
	Nodes   []*Node
	// Root is /run/ambit-e2e/<RunID>-root: node roots and the private bpffs live below.
	Root string

	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	bpffs  string
}

// Node is one node and its kubelet.
type Node struct {
	*cluster.Node
	Kubelet *kubelet.Kubelet
	// Root is the node's root directory (hostPath volumes live below it).
	Root string
}

// Start builds the fabric, starts the control plane in it on 10.10.0.1, adds the nodes
// with their kubelets and CNI configuration, and starts the scheduler. The kubelets run
// until Close. On error everything started is torn down.
func Start(ctx context.Context, opts Options) (*Testbed, error) {
	if opts.Name == "" || len(opts.Nodes) == 0 || opts.KubeBin == "" || opts.Bin == "" || opts.Dir == "" {
		return nil, errors.New("start testbed: Name, Nodes, KubeBin, Bin and Dir are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tb := &Testbed{opts: opts, log: log, errs: make(chan error, len(opts.Nodes)+1)}
	if err := tb.start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("start testbed: %w", err), tb.Close())
	}
	return tb, nil
}

func (tb *Testbed) start(ctx context.Context) error {
	// Runs of the same name whose process died without Close (killed, or timed out)
	// are removed first: their namespaces, processes, cgroups, mounts and directories.
	if cleaned, err := cluster.CleanupStale(tb.opts.Name); err != nil {
		return fmt.Errorf("clean up stale runs: %w", err)
	} else if len(cleaned) > 0 {
		tb.log.Warn("removed leftovers of dead runs", "runs", cleaned)
	}
	c, err := cluster.New(tb.opts.Name)
	if err != nil {
		return err
	}
	tb.Cluster = c
	tb.Root = filepath.Join(cluster.LedgerDir, c.RunID+"-root")
	if err := c.RegisterCleanupPath(tb.Root); err != nil {
		return err
	}
	tb.bpffs = filepath.Join(tb.Root, "bpf")
	if err := os.MkdirAll(tb.bpffs, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpf", tb.bpffs, "bpf", 0, "mode=0700"); err != nil {
		tb.bpffs = ""
		return fmt.Errorf("mount bpffs: %w", err)
	}
	tb.Kube, err = kube.Start(ctx, kube.Options{
		BinDir: tb.opts.KubeBin, Dir: filepath.Join(tb.opts.Dir, "kube"), Logger: tb.log,
		Netns: c.FabricNetns, Host: c.BridgeIP.String(),
	})
	if err != nil {
		return err
	}
	if tb.Client, err = kubernetes.NewForConfig(tb.Kube.RESTConfig); err != nil {
		return err
	}
	// Pods can only be created once the service-account controller made "default".
	if err := Poll(ctx, "default service account", func(ctx context.Context) (bool, error) {
		_, err := tb.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	}); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(tb.Kube.CAFile)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	tb.cancel = cancel
	for _, name := range tb.opts.Nodes {
		n, err := tb.addNode(name, caPEM)
		if err != nil {
			return err
		}
		tb.Nodes = append(tb.Nodes, n)
		tb.wg.Go(func() {
			if err := n.Kubelet.Run(runCtx); err != nil {
				tb.errs <- fmt.Errorf("kubelet %s: %w", n.Name, err)
			}
		})
	}
	sched := &kubelet.Scheduler{Client: tb.Client, Nodes: tb.opts.Nodes, Logger: tb.log}
	tb.wg.Go(func() { _ = sched.Run(runCtx) })
	return nil
}

// addNode creates the node namespace, its root directory with the CNI plugins and the
// bridge network configuration, and its kubelet.
func (tb *Testbed) addNode(name string, caPEM []byte) (*Node, error) {
	cn, err := tb.Cluster.AddNode(name)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(tb.Root, name)
	bpf := filepath.Join(tb.bpffs, name)
	if err := os.MkdirAll(bpf, 0o700); err != nil {
		return nil, err
	}
	k, err := kubelet.New(kubelet.Config{
		Client: tb.Client, Node: cn, Root: root, BinDir: tb.opts.Bin,
		HostPaths: map[string]string{
			"/sys/fs/bpf": bpf, "/sys/fs/cgroup": tb.Cluster.CgroupRoot,
			"/run/netns": cluster.NetnsDir, "/var/run/netns": cluster.NetnsDir, "/proc": "/proc",
		},
		APIServer: tb.Kube.Server, CAData: caPEM,
		LogDir: filepath.Join(tb.opts.Dir, "pods"), Logger: tb.log,
	})
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := copyFile(filepath.Join(tb.opts.KubeBin, "cni", p), filepath.Join(root, kubelet.CNIBinDir, p)); err != nil {
			return nil, err
		}
	}
	first := cn.PodCIDR.Addr().As4()
	first[3] = 10
	conf := fmt.Sprintf(bridgeConflist, cn.PodCIDR, netip.AddrFrom4(first), filepath.Join(root, "var/lib/cni/networks"))
	if err := os.WriteFile(filepath.Join(root, kubelet.CNIConfDir, "10-bridge.conflist"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return &Node{Node: cn, Kubelet: k, Root: root}, nil
}

// bridgeConflist is the node's primary network: the reference bridge plugin on cni0
// (which the node already has, with the gateway address) and host-local IPAM from .10.
const bridgeConflist = `{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "%s", "rangeStart": "%s"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "%s"
      }
    }
  ]
}
`

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return out.Close()
}

// Close stops the kubelets and the scheduler, the control plane, then removes every
// namespace, cgroup, mount and directory of the run. It is safe to call twice.
func (tb *Testbed) Close() error {
	var errs []error
	if tb.cancel != nil {
		tb.cancel()
		tb.wg.Wait()
		tb.cancel = nil
	}
	if tb.Kube != nil {
		errs = append(errs, tb.Kube.Close())
		tb.Kube = nil
	}
	if tb.Cluster != nil {
		// Processes first (Close kills them), then the bpffs, then paths and namespaces.
		if tb.bpffs != "" {
			if err := unix.Unmount(tb.bpffs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount bpffs: %w", err))
			}
			tb.bpffs = ""
		}
		errs = append(errs, tb.Cluster.Close())
		tb.Cluster = nil
	}
	return errors.Join(errs...)
}

// Err returns the first failure of a kubelet, if any, without blocking.
func (tb *Testbed) Err() error {
	select {
	case err := <-tb.errs:
		return err
	default:
		return nil
	}
}
