package redirect

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// skLookupCtx mirrors struct bpf_sk_lookup from linux/bpf.h for BPF_PROG_TEST_RUN.
type skLookupCtx struct {
	Cookie         uint64
	Family         uint32
	Protocol       uint32
	RemoteIP4      uint32
	RemoteIP6      [4]uint32
	RemotePort     uint16 // network byte order
	_              uint16
	LocalIP4       uint32
	LocalIP6       [4]uint32
	LocalPort      uint32 // host byte order
	IngressIfindex uint32
	_              uint32
}

// listenInThrowawayNetns opens two TCP listeners in a fresh network namespace that
// only they keep alive, and returns them with their socket cookies.
func listenInThrowawayNetns(t *testing.T) (out, in net.Listener, outCookie, inCookie uint64) {
	t.Helper()
	type result struct {
		lns [2]net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded with the goroutine
		var r result
		if r.err = unix.Unshare(unix.CLONE_NEWNET); r.err != nil {
			done <- r
			return
		}
		lc := net.ListenConfig{}
		lc.SetMultipathTCP(false)
		for i := range r.lns {
			if r.lns[i], r.err = lc.Listen(context.Background(), "tcp4", "0.0.0.0:0"); r.err != nil {
				break
			}
		}
		done <- r
	}()
	r := <-done
	for _, ln := range r.lns {
		if ln != nil {
			t.Cleanup(func() { ln.Close() })
		}
	}
	if r.err != nil {
		t.Fatalf("listen in throwaway netns: %v", r.err)
	}
	return r.lns[0], r.lns[1], cookie(t, r.lns[0]), cookie(t, r.lns[1])
}

func cookie(t *testing.T, ln net.Listener) uint64 {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var c uint64
	var serr error
	if err := rc.Control(func(fd uintptr) {
		c, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil || serr != nil {
		t.Fatalf("SO_COOKIE: %v %v", err, serr)
	}
	return c
}

func sockFd(t *testing.T, ln net.Listener) uint64 {
	t.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return uint64(f.Fd())
}

// TestPrivilegedSkLookupDecisions runs the sk_lookup program through
// BPF_PROG_TEST_RUN over the decision table of shared/spec/redirection.md.
// The test-run context cannot carry ingress_ifindex, so it is always 0 there;
// "via lo" rows configure lo's ifindex as 0 and the other rows as 1.
func TestPrivilegedSkLookupDecisions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root to load eBPF programs")
	}
	objs, err := Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	outLn, inLn, outCookie, inCookie := listenInThrowawayNetns(t)

	pod := netip.MustParseAddr("10.199.1.2")
	node := netip.MustParseAddr("10.199.1.1")
	const viaLo, viaEth = 0, 1
	tests := []struct {
		name       string
		via        uint32
		proto      uint32
		src, dst   string
		port       uint32
		noListener bool
		wantRet    uint32 // SK_PASS=1, SK_DROP=0
		wantCookie uint64 // 0: no socket selected
	}{
		{name: "outbound captured", via: viaLo, src: "10.199.1.2", dst: "192.0.2.77", port: 4321, wantRet: 1, wantCookie: outCookie},
		{name: "outbound to pod ip", via: viaLo, src: "10.199.2.2", dst: "10.199.1.2", port: 8080, wantRet: 1},
		{name: "outbound loopback", via: viaLo, src: "127.0.0.1", dst: "127.0.0.53", port: 53, wantRet: 1},
		{name: "outbound udp", via: viaLo, proto: unix.IPPROTO_UDP, src: "10.199.1.2", dst: "192.0.2.77", port: 53, wantRet: 1},
		{name: "outbound no listener passes", via: viaLo, src: "10.199.1.2", dst: "192.0.2.77", port: 4321, noListener: true, wantRet: 1},
		{name: "inbound captured", via: viaEth, src: "10.199.2.2", dst: "10.199.1.2", port: 8080, wantRet: 1, wantCookie: inCookie},
		{name: "inbound not for pod", via: viaEth, src: "10.199.2.2", dst: "10.199.9.9", port: 8080, wantRet: 1},
		{name: "hairpin", via: viaEth, src: "10.199.1.2", dst: "10.199.1.2", port: 8080, wantRet: 1},
		{name: "hbone", via: viaEth, src: "10.199.2.2", dst: "10.199.1.2", port: 15008, wantRet: 1},
		{name: "probe source", via: viaEth, src: "10.199.1.1", dst: "10.199.1.2", port: 8080, wantRet: 1},
		{name: "inbound no listener drops", via: viaEth, src: "10.199.2.2", dst: "10.199.1.2", port: 8080, noListener: true, wantRet: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config{PodIP: pod, LoIfindex: 1, Mark: 0x53b, HBONEPort: 15008,
				ProbeSources: []netip.Addr{node}}.marshal()
			if err != nil {
				t.Fatal(err)
			}
			cfg.LoIfindex = tc.via // the packet comes via ifindex 0: lo when 0, "eth0" when 1
			if err := objs.ConfigMap.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
			for _, k := range []uint32{SockMapKeyOutbound, SockMapKeyInbound} {
				_ = objs.Listeners.Delete(k)
			}
			if !tc.noListener {
				mustPut(t, objs.Listeners, SockMapKeyOutbound, sockFd(t, outLn))
				mustPut(t, objs.Listeners, SockMapKeyInbound, sockFd(t, inLn))
			}
			proto := tc.proto
			if proto == 0 {
				proto = unix.IPPROTO_TCP
			}
			in := skLookupCtx{Family: unix.AF_INET, Protocol: proto, LocalPort: tc.port,
				RemoteIP4:  ipv4NetworkOrder(netip.MustParseAddr(tc.src)),
				LocalIP4:   ipv4NetworkOrder(netip.MustParseAddr(tc.dst)),
				RemotePort: 0x3930}
			var out skLookupCtx
			ret, err := objs.SkLookup.Run(&ebpf.RunOptions{Context: in, ContextOut: &out})
			if err != nil {
				t.Fatalf("test run: %v", err)
			}
			if ret != tc.wantRet || out.Cookie != tc.wantCookie {
				t.Fatalf("verdict %d cookie %d, want %d cookie %d (out=%d in=%d)",
					ret, out.Cookie, tc.wantRet, tc.wantCookie, outCookie, inCookie)
			}
		})
	}
}

func mustPut(t *testing.T, m *ebpf.Map, k uint32, fd uint64) {
	t.Helper()
	if err := m.Update(k, fd, ebpf.UpdateAny); err != nil {
		t.Fatalf("sockmap put %d: %v", k, err)
	}
}
