package redirect

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/pkg/inpod"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// RulePriority is the priority of the in-pod rule "fwmark 0x53b lookup 100"; it sits
// before the main table (32766).
const RulePriority = 32764

// fwmarkAcceptSysctl makes accepted sockets inherit the SYN's mark, so the app's
// replies to ztunnel's delivery socket route back through the capture table.
const fwmarkAcceptSysctl = "/proc/sys/net/ipv4/tcp_fwmark_accept"

func (kernelDatapath) installRouting(_ string, p Pod) error {
	ns, err := inpod.OpenNetns(p.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in pod netns: %w", err)
	}
	route := captureRoute(lo.Attrs().Index)
	route.Src = p.IP.Unmap().AsSlice()
	if err := h.RouteReplace(route); err != nil {
		return fmt.Errorf("add capture route: %w", err)
	}
	if err := h.RuleAdd(captureRule()); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add capture rule: %w", err)
	}
	return setFwmarkAccept(ns)
}

func (kernelDatapath) removeRouting(dir string) error {
	path, err := os.Readlink(filepath.Join(dir, pinNetns))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read recorded netns: %w", err)
	}
	ns, err := inpod.OpenNetns(path)
	if err != nil {
		return nil // the pod's netns is gone, and its rules with it
	}
	defer ns.Close()
	// Only touch the namespace the programs were attached to: a /proc/<pid> path
	// may now name another process's namespace.
	want, err := linkNetnsInode(dir)
	if got, ierr := ns.Inode(); err != nil || ierr != nil || got != want {
		return nil
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer h.Close()
	if err := h.RuleDel(captureRule()); err != nil && !isGone(err) {
		return fmt.Errorf("delete capture rule: %w", err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in pod netns: %w", err)
	}
	if err := h.RouteDel(captureRoute(lo.Attrs().Index)); err != nil && !isGone(err) {
		return fmt.Errorf("delete capture route: %w", err)
	}
	return nil
}

// captureRule is "fwmark 0x53b lookup 100"; only TCP sockets carry the mark.
func captureRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V4
	r.Priority = RulePriority
	r.Mark = wire.MarkCapture
	r.Table = wire.RouteTableCapture
	return r
}

// captureRoute is "local 0.0.0.0/0 dev lo scope host table 100" (callers add src).
func captureRoute(lo int) *netlink.Route {
	return &netlink.Route{
		Family:    netlink.FAMILY_V4,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		LinkIndex: lo,
		Table:     wire.RouteTableCapture,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
	}
}

// setFwmarkAccept writes net.ipv4.tcp_fwmark_accept=1 from a thread inside ns (net
// sysctls resolve against the opener's netns) and reads it back there.
func setFwmarkAccept(ns *inpod.Netns) error {
	return ns.Do(func() error {
		if err := os.WriteFile(fwmarkAcceptSysctl, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("set tcp_fwmark_accept: %w", err)
		}
		got, err := os.ReadFile(fwmarkAcceptSysctl)
		if err != nil {
			return fmt.Errorf("read tcp_fwmark_accept: %w", err)
		}
		if strings.TrimSpace(string(got)) != "1" {
			return fmt.Errorf("tcp_fwmark_accept is %q after writing 1", got)
		}
		return nil
	})
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// loIndex returns the ifindex of lo inside ns.
func loIndex(ns *inpod.Netns) (int, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return 0, fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return 0, fmt.Errorf("find lo in pod netns: %w", err)
	}
	return lo.Attrs().Index, nil
}
