package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func addAddr(h *netlink.Handle, name string, p netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, name, err)
	}
	return nil
}

// addRoute adds "dst via gw" (dst 0.0.0.0/0 for a default route).
func addRoute(h *netlink.Handle, dst netip.Prefix, gw netip.Addr) error {
	r := &netlink.Route{Dst: ipNet(dst), Gw: net.IP(gw.AsSlice())}
	if dst.Bits() == 0 {
		r.Dst = nil
	}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("add route %s via %s: %w", dst, gw, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addVethInto creates, in h's namespace, a veth pair whose first end (name)
// joins bridge master, and whose peer is moved into the namespace at
// peerNetns and named peerName. It returns the MAC addresses of both ends.
func addVethInto(h *netlink.Handle, name, master, peerNetns, peerName string) (hostMAC, peerMAC string, err error) {
	br, err := h.LinkByName(master)
	if err != nil {
		return "", "", fmt.Errorf("find bridge %s: %w", master, err)
	}
	peerNs, err := netns.GetFromPath(peerNetns)
	if err != nil {
		return "", "", fmt.Errorf("open netns %s: %w", peerNetns, err)
	}
	defer peerNs.Close()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(peerNs),
	}
	if err := h.LinkAdd(v); err != nil {
		return "", "", fmt.Errorf("add veth %s: %w", name, err)
	}
	if err := setUp(h, name); err != nil {
		return "", "", err
	}
	host, err := h.LinkByName(name)
	if err != nil {
		return "", "", fmt.Errorf("find link %s: %w", name, err)
	}
	err = withHandle(peerNetns, func(ph *netlink.Handle) error {
		peer, err := ph.LinkByName(peerName)
		if err != nil {
			return fmt.Errorf("find link %s in %s: %w", peerName, peerNetns, err)
		}
		peerMAC = peer.Attrs().HardwareAddr.String()
		return nil
	})
	return host.Attrs().HardwareAddr.String(), peerMAC, err
}

// writeSysctl writes a /proc/sys value (e.g. "net/ipv4/ip_forward") inside
// the namespace at netnsPath; net sysctls are per namespace and resolved
// against the writing thread's namespace.
func writeSysctl(netnsPath, key, value string) error {
	return InNetns(netnsPath, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}
