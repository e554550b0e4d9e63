package redirect_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ambitmesh/ambit/cni/redirect"
	"github.com/ambitmesh/ambit/pkg/inpod"
	"github.com/ambitmesh/ambit/pkg/inpod/inpodtest"
	"github.com/ambitmesh/ambit/pkg/wire"
)

var (
	nodeA     = netip.MustParseAddr("10.199.1.1") // node side of pod A's veth: the probe source
	podAIP    = netip.MustParseAddr("10.199.1.2")
	nodeB     = netip.MustParseAddr("10.199.2.1")
	podBIP    = netip.MustParseAddr("10.199.2.2")
	external  = netip.MustParseAddrPort("192.0.2.77:4321") // lives on the node netns's lo
	external2 = netip.MustParseAddrPort("198.51.100.9:80")
)

// topology is a node netns routing between two pod netns over veths.
type topology struct {
	node, a, b *inpodtest.NS
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	top := &topology{node: inpodtest.NewNetns(t), a: inpodtest.NewNetns(t), b: inpodtest.NewNetns(t)}
	hn := top.node.Handle(t)
	top.plug(t, hn, "va", top.a, nodeA, podAIP)
	top.plug(t, hn, "vb", top.b, nodeB, podBIP)
	lo, err := hn.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addAddr(t, hn, lo, netip.PrefixFrom(external.Addr(), 32))
	addAddr(t, hn, lo, netip.PrefixFrom(external2.Addr(), 32))
	if err := top.node.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}
	return top
}

// plug connects pod to the node with a veth: host side name/hostIP, pod side eth0/podIP.
func (top *topology) plug(t *testing.T, hn *netlink.Handle, name string, pod *inpodtest.NS, hostIP, podIP netip.Addr) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(pod.Fd())}
	if err := hn.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	host, err := hn.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addAddr(t, hn, host, netip.PrefixFrom(hostIP, 24))
	hp := pod.Handle(t)
	eth, err := hp.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addAddr(t, hp, eth, netip.PrefixFrom(podIP, 24))
	if err := hp.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: hostIP.AsSlice()}); err != nil {
		t.Fatalf("default route in pod: %v", err)
	}
}

func addAddr(t *testing.T, h *netlink.Handle, l netlink.Link, p netip.Prefix) {
	t.Helper()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		t.Fatalf("add %v: %v", p, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("link up: %v", err)
	}
}

func listenIn(t *testing.T, ns *inpodtest.NS, port int, transparent bool) *acceptor {
	t.Helper()
	ln, err := ns.Listen(port, transparent)
	if err != nil {
		t.Fatal(err)
	}
	return accept(t, ln)
}

func readSysctl(t *testing.T, ns *inpodtest.NS, name string) string {
	t.Helper()
	var v []byte
	if err := ns.Do(func() error {
		var err error
		v, err = os.ReadFile(filepath.Join("/proc/sys", name))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

// captureState lists the capture rules and table-100 routes in ns.
func captureState(t *testing.T, ns *inpodtest.NS) (rules, routes int) {
	t.Helper()
	h := ns.Handle(t)
	rs, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Table == wire.RouteTableCapture || r.Mark == wire.MarkCapture {
			rules++
		}
	}
	rts, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: wire.RouteTableCapture}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	return rules, len(rts)
}

func TestPrivilegedRedirection(t *testing.T) {
	inpodtest.RequireRoot(t)
	top := newTopology(t)
	cgroup := inpodtest.NewCgroup(t)
	mgr := &redirect.Manager{PinDir: filepath.Join(inpodtest.NewPinDir(t), "node-1")}
	uid := "pod-a-" + strings.TrimPrefix(top.a.Name, "ambit-test-")
	pod := redirect.Pod{UID: uid, Netns: top.a.Path, Cgroup: cgroup, IP: podAIP, ProbeSources: []netip.Addr{nodeA}}

	// Servers: the "internet" on the node, pod B's app, pod A's app.
	internet := listenIn(t, top.node, int(external.Port()), false)
	appB := listenIn(t, top.b, 9090, false)
	appA := listenIn(t, top.a, 8080, false)

	sm, err := mgr.Enrol(pod)
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	t.Cleanup(func() { mgr.Unenrol(uid) })
	defer sm.Close()

	// Play ztunnel in pod A.
	outLn, err := top.a.Listen(wire.PortOutbound, true)
	if err != nil {
		t.Fatal(err)
	}
	inLn, err := top.a.Listen(wire.PortInbound, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := inpod.RegisterListeners(sm, outLn, inLn); err != nil {
		t.Fatalf("register listeners: %v", err)
	}
	outbound, inbound := accept(t, outLn), accept(t, inLn)
	hbone := listenIn(t, top.a, wire.PortHBONE, false)

	t.Run("sysctl only in pod netns", func(t *testing.T) {
		if got := readSysctl(t, top.a, "net/ipv4/tcp_fwmark_accept"); got != "1" {
			t.Fatalf("pod A tcp_fwmark_accept = %s, want 1", got)
		}
		if got := readSysctl(t, top.node, "net/ipv4/tcp_fwmark_accept"); got != "0" {
			t.Fatalf("node tcp_fwmark_accept = %s, want 0", got)
		}
	})
	t.Run("outbound captured with original destination", func(t *testing.T) {
		for _, dst := range []netip.AddrPort{external, external2} {
			p := startPodProcess(t, cgroup, top.a.Path, dst)
			c := outbound.next(t)
			if got := inpod.OriginalDestination(c); got != dst {
				t.Fatalf("original destination = %v, want %v", got, dst)
			}
			if got := remoteIP(c); got != podAIP {
				t.Fatalf("client address = %v, want %v", got, podAIP)
			}
			echoLine(t, c, "from-ztunnel")
			if got := p.wait(t); got != "from-ztunnel" {
				t.Fatalf("client got %q", got)
			}
		}
		internet.idle(t)
	})
	t.Run("hairpin to own pod IP is not captured", func(t *testing.T) {
		p := startPodProcess(t, cgroup, top.a.Path, netip.AddrPortFrom(podAIP, 8080))
		c := appA.next(t)
		echoLine(t, c, "from-app")
		if got := p.wait(t); got != "from-app" {
			t.Fatalf("client got %q", got)
		}
		outbound.idle(t)
		inbound.idle(t)
	})
	t.Run("ztunnel dial is not captured", func(t *testing.T) {
		c, err := top.a.Dial(ctxTimeout(t), netip.AddrPortFrom(podBIP, 9090))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := appB.next(t)
		if got := remoteIP(s); got != podAIP {
			t.Fatalf("pod B sees %v, want %v", got, podAIP)
		}
		exchange(t, c, s)
		outbound.idle(t)
	})
	t.Run("inbound captured, hbone not", func(t *testing.T) {
		c, err := top.b.Dial(ctxTimeout(t), netip.AddrPortFrom(podAIP, 8080))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := inbound.next(t)
		if got, want := inpod.OriginalDestination(s), netip.AddrPortFrom(podAIP, 8080); got != want {
			t.Fatalf("original destination = %v, want %v", got, want)
		}
		if got := remoteIP(s); got != podBIP {
			t.Fatalf("inbound client = %v, want %v", got, podBIP)
		}
		exchange(t, c, s)
		h, err := top.b.Dial(ctxTimeout(t), netip.AddrPortFrom(podAIP, wire.PortHBONE))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		exchange(t, h, hbone.next(t))
		inbound.idle(t)
		appA.idle(t)
	})
	t.Run("probe from node reaches app", func(t *testing.T) {
		c, err := top.node.Dial(ctxTimeout(t), netip.AddrPortFrom(podAIP, 8080))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := appA.next(t)
		if got := remoteIP(s); got != nodeA {
			t.Fatalf("app sees %v, want %v", got, nodeA)
		}
		exchange(t, c, s)
		inbound.idle(t)
	})
	t.Run("delivery keeps client source IP", func(t *testing.T) {
		c, err := top.a.DialApp(ctxTimeout(t), podBIP, netip.AddrPortFrom(podAIP, 8080))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := appA.next(t)
		if got := remoteIP(s); got != podBIP {
			t.Fatalf("app sees %v, want %v", got, podBIP)
		}
		exchange(t, c, s)
		inbound.idle(t)
		outbound.idle(t)
	})
	t.Run("enrol is idempotent and recoverable", func(t *testing.T) {
		sm2, err := mgr.Enrol(pod)
		if err != nil {
			t.Fatalf("second enrol: %v", err)
		}
		sm2.Close()
		if uids, err := mgr.Enrolled(); err != nil || !slices.Equal(uids, []string{uid}) {
			t.Fatalf("enrolled = %v, %v", uids, err)
		}
		sm3, err := mgr.SockMap(uid)
		if err != nil {
			t.Fatalf("sockmap: %v", err)
		}
		sm3.Close()
		if rules, routes := captureState(t, top.a); rules != 1 || routes != 1 {
			t.Fatalf("capture rules %d routes %d, want 1 and 1", rules, routes)
		}
		// Still captured after re-enrol.
		p := startPodProcess(t, cgroup, top.a.Path, external)
		echoLine(t, outbound.next(t), "again")
		if got := p.wait(t); got != "again" {
			t.Fatalf("client got %q", got)
		}
	})
	t.Run("no netfilter", func(t *testing.T) {
		for _, ns := range []*inpodtest.NS{top.a, top.b, top.node} {
			if err := inpodtest.NoNetfilter(ns.Netns); err != nil {
				t.Fatalf("%s: %v", ns.Name, err)
			}
		}
	})
	t.Run("stop capture then unenrol", func(t *testing.T) {
		if err := mgr.StopCapture(uid); err != nil {
			t.Fatalf("stop capture: %v", err)
		}
		directToInternet(t, cgroup, top.a.Path, internet)
		if err := mgr.Unenrol(uid); err != nil {
			t.Fatalf("unenrol: %v", err)
		}
		if err := mgr.Unenrol(uid); err != nil {
			t.Fatalf("second unenrol: %v", err)
		}
		directToInternet(t, cgroup, top.a.Path, internet)
		outbound.idle(t)
		if _, err := os.Stat(filepath.Join(mgr.PinDir, uid)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("pins remain: %v", err)
		}
		if uids, _ := mgr.Enrolled(); len(uids) != 0 {
			t.Fatalf("enrolled = %v", uids)
		}
		if _, err := mgr.SockMap(uid); !errors.Is(err, redirect.ErrNotEnrolled) {
			t.Fatalf("sockmap after unenrol: %v", err)
		}
		if rules, routes := captureState(t, top.a); rules != 0 || routes != 0 {
			t.Fatalf("capture rules %d routes %d remain", rules, routes)
		}
		// Inbound is no longer steered either.
		c, err := top.b.Dial(ctxTimeout(t), netip.AddrPortFrom(podAIP, 8080))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange(t, c, appA.next(t))
		inbound.idle(t)
	})
}

// directToInternet checks that a pod process reaches the node's server, uncaptured.
func directToInternet(t *testing.T, cgroup, netnsPath string, internet *acceptor) {
	t.Helper()
	p := startPodProcess(t, cgroup, netnsPath, external)
	c := internet.next(t)
	if got := remoteIP(c); got != podAIP {
		t.Fatalf("internet sees %v, want %v", got, podAIP)
	}
	echoLine(t, c, "direct")
	if got := p.wait(t); got != "direct" {
		t.Fatalf("client got %q", got)
	}
}

// exchange sends a line each way between client c and server s.
func exchange(t *testing.T, c, s net.Conn) {
	t.Helper()
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if got := echoLine(t, s, "pong"); got != "ping" {
		t.Fatalf("server got %q", got)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "pong" {
		t.Fatalf("client got %q, %v", line, err)
	}
}
