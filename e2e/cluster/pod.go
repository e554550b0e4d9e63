package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

// Pod is a pod namespace on a node, with its own cgroup.
type Pod struct {
	// Name and Namespace are the Kubernetes pod name and namespace.
	Name, Namespace string
	// UID is a fresh random UUID, as kubelet assigns.
	UID string
	// ContainerID is a random 64-hex sandbox ID, passed as CNI_CONTAINERID.
	ContainerID string
	// IP is the pod's eth0 address, the next free one in the node's PodCIDR.
	IP netip.Addr
	// NetnsPath is /run/netns/<RunID>-pod-<Namespace>-<Name>.
	NetnsPath string
	// CgroupDir is <CgroupRoot>/kubepods/pod<UID>, where Start and Run place the pod's processes.
	CgroupDir string
	// HostIfName is the node-side end of the pod's veth (in the node netns, on cni0).
	HostIfName string
	// HostMAC and MAC are the MAC addresses of the node-side end and of the pod's eth0.
	HostMAC, MAC string
	// Node is the node the pod runs on.
	Node *Node
}

// AddPod creates a pod on the node: a namespace with lo up, eth0 (veth into
// cni0) holding the next free address of the node's /24, a default route
// via the node's gateway, and the cgroup <CgroupRoot>/kubepods/pod<uid>.
// (namespace, name) must be unique in the cluster.
func (n *Node) AddPod(namespace, name string) (*Pod, error) {
	return n.addPod(namespace, name, newUUID(), func(p *Pod) error {
		ip, err := podAddr(n.PodCIDR, n.nextPod)
		if err != nil {
			return err
		}
		p.IP, p.HostIfName = ip, fmt.Sprintf("veth%d", n.nextPod+2)
		n.nextPod++
		return wirePod(n, p)
	})
}

// addPod validates the names, creates the pod's cgroup and namespace, runs wire (nil
// for none) with the cluster locked, and records the pod.
func (n *Node) addPod(namespace, name, uid string, wire func(*Pod) error) (*Pod, error) {
	if err := validName("namespace", namespace); err != nil {
		return nil, fmt.Errorf("add pod: %w", err)
	}
	if err := validName("pod", name); err != nil {
		return nil, fmt.Errorf("add pod: %w", err)
	}
	if uid == "" || filepath.Base(uid) != uid {
		return nil, fmt.Errorf("add pod %s/%s: bad uid %q", namespace, name, uid)
	}
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	for _, p := range c.pods {
		if p.Namespace == namespace && p.Name == name {
			return nil, fmt.Errorf("add pod %s/%s: already exists", namespace, name)
		}
	}
	p := &Pod{
		Name: name, Namespace: namespace, UID: uid, ContainerID: randomHex(32),
		NetnsPath: filepath.Join(NetnsDir, c.RunID+"-pod-"+namespace+"-"+name),
		CgroupDir: filepath.Join(c.CgroupRoot, "kubepods", "pod"+uid),
		Node:      n,
	}
	if err := os.Mkdir(p.CgroupDir, 0o755); err != nil {
		return nil, fmt.Errorf("add pod %s/%s: create cgroup: %w", namespace, name, err)
	}
	if err := c.createNetnsLocked(p.NetnsPath); err != nil {
		return nil, fmt.Errorf("add pod %s/%s: %w", namespace, name, err)
	}
	if wire != nil {
		if err := wire(p); err != nil {
			return nil, fmt.Errorf("add pod %s/%s: %w", namespace, name, err)
		}
	}
	c.pods = append(c.pods, p)
	return p, nil
}

// wirePod creates the pod's veth and configures its namespace.
func wirePod(n *Node, p *Pod) error {
	err := withHandle(n.NetnsPath, func(h *netlink.Handle) error {
		var err error
		p.HostMAC, p.MAC, err = addVethInto(h, p.HostIfName, NodeBridge, p.NetnsPath, "eth0")
		return err
	})
	if err != nil {
		return err
	}
	return withHandle(p.NetnsPath, func(h *netlink.Handle) error {
		if err := setUp(h, "lo"); err != nil {
			return err
		}
		if err := addAddr(h, "eth0", netip.PrefixFrom(p.IP, n.PodCIDR.Bits())); err != nil {
			return err
		}
		if err := setUp(h, "eth0"); err != nil {
			return err
		}
		return addRoute(h, netip.PrefixFrom(netip.IPv4Unspecified(), 0), n.Gateway)
	})
}

// Pods returns every pod in creation order.
func (c *Cluster) Pods() []*Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Pod(nil), c.pods...)
}

// Start runs argv as a pod process: in the pod namespace and in the pod
// cgroup from its first instruction (clone3 with CLONE_INTO_CGROUP, via
// SysProcAttr.UseCgroupFD, running `nsenter --net=<pod> -- argv`). Output is
// appended to logPath ("" discards it). The process gets SIGTERM (then
// SIGKILL after StopGrace) when ctx ends, and the cluster's Close stops it.
func (p *Pod) Start(ctx context.Context, logPath string, argv ...string) (*Process, error) {
	return p.Node.c.start(ctx, p.NetnsPath, &p.CgroupDir, logPath, argv)
}

// Run runs argv like Start, waits, and returns its stdout; on a non-zero
// exit the error carries stderr and the stdout is still returned.
func (p *Pod) Run(ctx context.Context, argv ...string) ([]byte, error) {
	return p.Node.c.run(ctx, p.NetnsPath, &p.CgroupDir, argv)
}

// Dial connects from inside the pod namespace (see Dial). The connection is
// made by the calling process, which is not in the pod cgroup, so cgroup
// eBPF programs attached to the pod do not see it: use Run for traffic
// that must look like the pod's own.
func (p *Pod) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return Dial(ctx, p.NetnsPath, network, addr)
}

// String is "namespace/name (ip on node)".
func (p *Pod) String() string {
	return fmt.Sprintf("%s/%s (%s on %s)", p.Namespace, p.Name, p.IP, p.Node.Name)
}
