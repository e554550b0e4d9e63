package capture

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and AF_PACKET sockets")
	}
}

// twoPods makes a one-node cluster with two pods, closed on cleanup.
func twoPods(t *testing.T) (*cluster.Cluster, *cluster.Pod, *cluster.Pod) {
	t.Helper()
	c, err := cluster.New("cap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	n, err := c.AddNode("node-a")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := n.AddPod("demo", "p1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := n.AddPod("demo", "p2")
	if err != nil {
		t.Fatal(err)
	}
	return c, p1, p2
}

func TestPrivilegedCapture(t *testing.T) {
	requireRoot(t)
	_, p1, p2 := twoPods(t)
	ln, err := cluster.Listen(p2.NetnsPath, "tcp", p2.IP.String()+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()

	capt, err := Start(p1.NetnsPath, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := p1.Dial(context.Background(), "tcp", p2.IP.String()+":9000")
	if err != nil {
		t.Fatal(err)
	}
	marker := "MARKER-" + p1.UID
	if _, err := io.WriteString(conn, "prefix "+marker+" suffix"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The receiver has the bytes, so they crossed p1's eth0 before Stop.
	if b := <-got; !strings.Contains(string(b), marker) {
		t.Fatalf("receiver got %q", b)
	}
	sum, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Contains([]byte(marker)) {
		t.Errorf("marker not seen; summary %+v", sum)
	}
	if sum.Contains([]byte("MARKER-absent")) {
		t.Error("absent marker seen")
	}
	if !slices.Contains(sum.PayloadPorts(), 9000) || sum.Packets[FlowKey{ProtoTCP, 9000}] < 3 {
		t.Errorf("payload ports %v, packets %v", sum.PayloadPorts(), sum.Packets)
	}
	if sum.Dropped != 0 || sum.Truncated != 0 {
		t.Errorf("dropped %d truncated %d", sum.Dropped, sum.Truncated)
	}
	if again, err := capt.Stop(); err != nil || again != sum {
		t.Errorf("second Stop = %p, %v", again, err)
	}
	if _, err := Start(p1.NetnsPath, "nope0"); err == nil {
		t.Error("capture on a missing interface started")
	}
}

func TestPrivilegedNoPacketFilterRules(t *testing.T) {
	requireRoot(t)
	c, p1, p2 := twoPods(t)
	all := []string{c.FabricNetns, p1.Node.NetnsPath, p1.NetnsPath, p2.NetnsPath}
	if err := NoPacketFilterRules(all...); err != nil {
		t.Fatalf("fresh namespaces: %v", err)
	}

	if err := cluster.InNetns(p1.NetnsPath, func() error { return addNftTable("ambit-test") }); err != nil {
		t.Fatalf("add nftables table: %v", err)
	}
	err := NoPacketFilterRules(all...)
	if !errors.Is(err, ErrPacketFilterRules) || !strings.Contains(err.Error(), p1.NetnsPath+": nftables inet ambit-test") {
		t.Fatalf("after nft table: %v", err)
	}

	if err := cluster.InNetns(p2.NetnsPath, touchLegacyFilter); err != nil {
		t.Fatalf("instantiate iptables filter table: %v", err)
	}
	err = NoPacketFilterRules(p2.NetnsPath)
	if !errors.Is(err, ErrPacketFilterRules) || !strings.Contains(err.Error(), "legacy ip_tables filter") {
		t.Fatalf("after legacy table: %v", err)
	}
	if err := NoPacketFilterRules(c.FabricNetns); err != nil {
		t.Fatalf("untouched fabric: %v", err)
	}
}

// addNftTable creates an inet table in the calling thread's namespace with
// a netlink batch (what `nft add table inet <name>` sends).
func addNftTable(name string) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	batch := slices.Concat(
		nfMessage(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, 1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil),
		nfMessage(nfMsgType(unix.NFT_MSG_NEWTABLE), unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, 2, unix.NFPROTO_INET, 0,
			nlAttr(unix.NFTA_TABLE_NAME, append([]byte(name), 0))),
		nfMessage(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, 3, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil),
	)
	if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	_, _, err = parseTableDump(buf[:n]) // the ACK, or the kernel's error
	return err
}

// touchLegacyFilter asks the legacy iptables backend about table "filter"
// (IPT_SO_GET_INFO), which instantiates the table in this namespace.
func touchLegacyFilter() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var info [84]byte // struct ipt_getinfo
	copy(info[:], "filter")
	size := uint32(len(info))
	const iptSoGetInfo = 64
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_IP, iptSoGetInfo,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		return errno
	}
	return nil
}
