package capture

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"golang.org/x/sys/unix"
)

const (
	readBuf    = 256 << 10 // above the 64 KiB GSO super-packets veths pass up
	socketBuf  = 16 << 20  // SO_RCVBUFFORCE
	pollMillis = 50        // how often the reader checks for Stop
)

// Capture reads every packet crossing one link of a namespace, in both
// directions, until Stop. The reading goroutine lives until Stop.
type Capture struct {
	fd       int
	stop     chan struct{}
	done     chan struct{}
	sum      *Summary
	err      error
	stopOnce sync.Once
}

// Start opens an AF_PACKET (SOCK_DGRAM, ETH_P_ALL) socket inside the
// namespace at netnsPath, bound to interface ifname, and starts reading.
// Packets are captured from the moment Start returns. The caller must call
// Stop, which releases the socket (and its namespace reference).
func Start(netnsPath, ifname string) (*Capture, error) {
	var fd int
	err := cluster.InNetns(netnsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0 receives nothing until bind, so no packet of another
		// interface is queued in between.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuf)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start capture on %s in %s: %w", ifname, netnsPath, err)
	}
	c := &Capture{fd: fd, stop: make(chan struct{}), done: make(chan struct{}), sum: newSummary()}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read consumes packets until Stop, then drains what is queued.
func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, readBuf)
	pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	for {
		stopping := false
		select {
		case <-c.stop:
			stopping = true
		default:
		}
		if err := c.drain(buf); err != nil {
			c.err = err
			return
		}
		if stopping {
			return
		}
		if _, err := unix.Poll(pfd, pollMillis); err != nil && !errors.Is(err, unix.EINTR) {
			c.err = fmt.Errorf("poll: %w", err)
			return
		}
	}
}

// drain reads until the socket queue is empty.
func (c *Capture) drain(buf []byte) error {
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("read packet: %w", err)
		}
		if n > len(buf) {
			c.sum.Truncated++
			n = len(buf)
		}
		c.sum.add(buf[:n])
	}
}

// Stop ends the capture, reads what is still queued and returns the
// summary. Packets that crossed the link before Stop was called are
// included. Calling Stop again returns the same summary.
func (c *Capture) Stop() (*Summary, error) {
	c.stopOnce.Do(func() {
		close(c.stop)
		<-c.done
		if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.sum.Dropped = st.Drops
		}
		unix.Close(c.fd)
	})
	if c.err != nil {
		return c.sum, fmt.Errorf("capture: %w", c.err)
	}
	return c.sum, nil
}
