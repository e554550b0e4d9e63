package inpod

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ambitmesh/ambit/bpf/redirect"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// ErrNotTCP is returned when a listener passed to RegisterListeners has no socket.
var ErrNotTCP = errors.New("not a TCP socket")

// Listen opens a TCP listener on 0.0.0.0:port inside n with MPTCP off (a SOCKMAP
// refuses MPTCP sockets) and SO_REUSEADDR. transparent sets IP_TRANSPARENT, which
// the outbound (15001) listener needs: its accepted sockets have non-local local
// addresses (the original destinations).
func (n *Netns) Listen(port int, transparent bool) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return setOpts(c, func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return fmt.Errorf("set SO_REUSEADDR: %w", err)
			}
			if transparent {
				if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
					return fmt.Errorf("set IP_TRANSPARENT: %w", err)
				}
			}
			return nil
		})
	}}
	lc.SetMultipathTCP(false)
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen in pod netns on %d: %w", port, err)
	}
	return ln, nil
}

// RegisterListeners stores the outbound (15001) and inbound (15006) listeners in a
// pod's redirection SOCKMAP at redirect.SockMapKeyOutbound and SockMapKeyInbound,
// replacing earlier ones (e.g. after a ztunnel restart). A nil listener is skipped.
// The kernel drops an entry by itself when its socket closes.
func RegisterListeners(m *ebpf.Map, outbound, inbound net.Listener) error {
	for _, e := range []struct {
		key uint32
		ln  net.Listener
	}{{redirect.SockMapKeyOutbound, outbound}, {redirect.SockMapKeyInbound, inbound}} {
		if e.ln == nil {
			continue
		}
		sc, ok := e.ln.(syscall.Conn)
		if !ok {
			return fmt.Errorf("register listener %v: %w", e.ln.Addr(), ErrNotTCP)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return fmt.Errorf("register listener %v: %w", e.ln.Addr(), err)
		}
		if err := setOpts(rc, func(fd int) error {
			return m.Update(e.key, uint64(fd), ebpf.UpdateAny)
		}); err != nil {
			return fmt.Errorf("register listener %v at key %d: %w", e.ln.Addr(), e.key, err)
		}
	}
	return nil
}

// Dial opens a plain TCP connection to addr from inside n (upstream, HBONE or
// passthrough traffic). ztunnel's sockets are not in the pod's cgroup, so they are
// not marked and leave the pod uncaptured. MPTCP is off.
func (n *Netns) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	d.SetMultipathTCP(false)
	return n.dial(ctx, &d, addr)
}

// DialApp connects to the app at dst from inside n with src as the source address, so
// the app sees the original client IP (as Istio's ztunnel inbound delivery). Per
// shared/spec/redirection.md the socket has IP_TRANSPARENT, is bound to lo (else the
// SYN is seen as inbound and steered to 15006 again), bound to src with a kernel
// chosen port, and marked wire.MarkCapture so the app's replies route back locally.
func (n *Netns) DialApp(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Unmap(), 0)),
		Control: func(_, _ string, c syscall.RawConn) error {
			return setOpts(c, deliveryOpts)
		},
	}
	d.SetMultipathTCP(false)
	return n.dial(ctx, &d, dst)
}

func deliveryOpts(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
		return fmt.Errorf("set IP_TRANSPARENT: %w", err)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo"); err != nil {
		return fmt.Errorf("set SO_BINDTODEVICE lo: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, wire.MarkCapture); err != nil {
		return fmt.Errorf("set SO_MARK: %w", err)
	}
	// Pick the source port at connect time so one client IP can reach many app ports.
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		return fmt.Errorf("set IP_BIND_ADDRESS_NO_PORT: %w", err)
	}
	return nil
}

func (n *Netns) dial(ctx context.Context, d *net.Dialer, addr netip.AddrPort) (net.Conn, error) {
	if !addr.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("dial %v in pod netns: only IPv4 is supported", addr)
	}
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %v in pod netns: %w", addr, err)
	}
	return c, nil
}

// OriginalDestination returns the destination the client asked for on a connection
// accepted by a captured (15001/15006) listener: with sk_lookup steering, that is
// simply the accepted socket's local address. The zero AddrPort is returned for
// non-TCP connections.
func OriginalDestination(c net.Conn) netip.AddrPort {
	a, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// setOpts runs fn on the raw fd, joining the Control error and fn's error.
func setOpts(c syscall.RawConn, fn func(fd int) error) error {
	var fnErr error
	if err := c.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}
