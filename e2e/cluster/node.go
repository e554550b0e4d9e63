package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

// NodeBridge is the name of the pod bridge in every node namespace.
const NodeBridge = "cni0"

// Node is a node namespace: eth0 on the fabric bridge and a cni0 bridge
// that pod veths join.
type Node struct {
	// Name is the node name given to AddNode (e.g. "node-a").
	Name string
	// Index is the 1-based order in which the node was added.
	Index int
	// IP is the node's fabric address, 10.10.0.(10+Index).
	IP netip.Addr
	// PodCIDR is 10.20.Index.0/24.
	PodCIDR netip.Prefix
	// Gateway is the cni0 address and the pods' default gateway, 10.20.Index.1.
	Gateway netip.Addr
	// NetnsPath is /run/netns/<RunID>-<Name>.
	NetnsPath string

	c        *Cluster
	nextPod  int
	podNames map[string]bool
}

// AddNode creates a node namespace wired as notes/contracts.md says: veth
// "eth0" on the fabric bridge with 10.10.0.(10+n)/24, bridge cni0 with
// 10.20.n.1/24, ip_forward=1, and routes to every other node's pod CIDR via
// that node's fabric IP (both directions); the fabric also routes each pod
// CIDR to its node. n is the 1-based order of AddNode calls, so the first
// node gets 10.10.0.11 and 10.20.1.0/24.
func (c *Cluster) AddNode(name string) (*Node, error) {
	if err := validName("node", name); err != nil {
		return nil, fmt.Errorf("add node: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	for _, n := range c.nodes {
		if n.Name == name {
			return nil, fmt.Errorf("add node %s: already exists", name)
		}
	}
	idx := len(c.nodes) + 1
	ip, cidr, gw, err := nodeAddrs(idx)
	if err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	n := &Node{
		Name: name, Index: idx, IP: ip, PodCIDR: cidr, Gateway: gw,
		NetnsPath: filepath.Join(NetnsDir, c.RunID+"-"+name),
		c:         c, podNames: map[string]bool{},
	}
	if err := c.createNetnsLocked(n.NetnsPath); err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	if err := c.wireNode(n); err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	c.nodes = append(c.nodes, n)
	return n, nil
}

// wireNode connects node n to the fabric and to the existing nodes.
func (c *Cluster) wireNode(n *Node) error {
	err := withHandle(c.FabricNetns, func(h *netlink.Handle) error {
		if _, _, err := addVethInto(h, fmt.Sprintf("veth-n%d", n.Index), FabricBridge, n.NetnsPath, "eth0"); err != nil {
			return err
		}
		return addRoute(h, n.PodCIDR, n.IP)
	})
	if err != nil {
		return err
	}
	err = withHandle(n.NetnsPath, func(h *netlink.Handle) error {
		if err := setUp(h, "lo"); err != nil {
			return err
		}
		if err := addAddr(h, "eth0", netip.PrefixFrom(n.IP, fabricPrefix.Bits())); err != nil {
			return err
		}
		if err := setUp(h, "eth0"); err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: NodeBridge}}); err != nil {
			return fmt.Errorf("add bridge %s: %w", NodeBridge, err)
		}
		// A bridge without an assigned address takes the lowest MAC of its ports, so
		// removing a pod could change the gateway's MAC under the other pods' neighbour
		// entries and drop their packets until ARP re-resolves (~30 s). Fix it, as a
		// node's CNI bridge keeps one address.
		br, err := h.LinkByName(NodeBridge)
		if err != nil {
			return fmt.Errorf("find bridge %s: %w", NodeBridge, err)
		}
		mac := net.HardwareAddr{0x02, 0x00, 0x0a, 0x14, byte(n.Index), 0x01}
		if err := h.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("set bridge %s address: %w", NodeBridge, err)
		}
		if err := addAddr(h, NodeBridge, netip.PrefixFrom(n.Gateway, n.PodCIDR.Bits())); err != nil {
			return err
		}
		if err := setUp(h, NodeBridge); err != nil {
			return err
		}
		for _, o := range c.nodes {
			if err := addRoute(h, o.PodCIDR, o.IP); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeSysctl(n.NetnsPath, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	for _, o := range c.nodes {
		if err := withHandle(o.NetnsPath, func(h *netlink.Handle) error { return addRoute(h, n.PodCIDR, n.IP) }); err != nil {
			return err
		}
	}
	return nil
}

// Start runs argv in the node namespace (`nsenter --net=<node> --`, keeping
// the host's /sys, cgroup fs and bpffs), with stdout and stderr appended to
// logPath ("" discards them). The process gets SIGTERM (then SIGKILL after
// StopGrace) when ctx ends, and the cluster's Close stops it.
func (n *Node) Start(ctx context.Context, logPath string, argv ...string) (*Process, error) {
	return n.c.start(ctx, n.NetnsPath, nil, logPath, argv)
}

// Run runs argv in the node namespace, waits, and returns its stdout; on a
// non-zero exit the error carries stderr and the stdout is still returned.
func (n *Node) Run(ctx context.Context, argv ...string) ([]byte, error) {
	return n.c.run(ctx, n.NetnsPath, nil, argv)
}

// Dial connects from inside the node namespace (see Dial).
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return Dial(ctx, n.NetnsPath, network, addr)
}

// Pods returns the node's pods in creation order.
func (n *Node) Pods() []*Pod {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	var out []*Pod
	for _, p := range n.c.pods {
		if p.Node == n {
			out = append(out, p)
		}
	}
	return out
}
