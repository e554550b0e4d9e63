package redirect_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a "process in the pod": it joins the pod
// cgroup at clone time (CLONE_INTO_CGROUP) and the pod netns with setns, connects
// to helperDst, sends a line and prints the reply.
const (
	helperEnv   = "AMBIT_REDIRECT_TEST_HELPER"
	helperNetns = "AMBIT_REDIRECT_TEST_NETNS"
	helperDst   = "AMBIT_REDIRECT_TEST_DST"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "dial" {
		if err := helperDial(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperDial() error {
	runtime.LockOSThread()
	f, err := os.Open(os.Getenv(helperNetns))
	if err != nil {
		return err
	}
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	d.SetMultipathTCP(false)
	c, err := d.Dial("tcp4", os.Getenv(helperDst))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "hello from %s\n", c.LocalAddr()); err != nil {
		return err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	fmt.Print(reply)
	return nil
}

// podProcess is a child process in cgroup+netns that connects to dst.
type podProcess struct {
	cmd *exec.Cmd
	out strings.Builder
	err strings.Builder
}

func startPodProcess(t *testing.T, cgroup, netnsPath string, dst netip.AddrPort) *podProcess {
	t.Helper()
	cg, err := os.Open(cgroup)
	if err != nil {
		t.Fatalf("open cgroup: %v", err)
	}
	defer cg.Close()
	p := &podProcess{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	p.cmd.Env = append(os.Environ(), helperEnv+"=dial", helperNetns+"="+netnsPath, helperDst+"="+dst.String())
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	p.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pod process: %v", err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// wait returns the reply the process printed.
func (p *podProcess) wait(t *testing.T) string {
	t.Helper()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("pod process: %v: %s", err, p.err.String())
	}
	return strings.TrimSpace(p.out.String())
}

// acceptor accepts connections on ln in the background until cleanup.
type acceptor struct {
	ln    net.Listener
	conns chan net.Conn
}

func accept(t *testing.T, ln net.Listener) *acceptor {
	t.Helper()
	a := &acceptor{ln: ln, conns: make(chan net.Conn, 16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(a.conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for c := range a.conns {
			c.Close()
		}
	})
	return a
}

// next waits for the next accepted connection.
func (a *acceptor) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c, ok := <-a.conns:
		if !ok {
			t.Fatalf("listener %v closed", a.ln.Addr())
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no connection on %v within 5s", a.ln.Addr())
		return nil
	}
}

// idle fails if a connection is waiting.
func (a *acceptor) idle(t *testing.T) {
	t.Helper()
	select {
	case c := <-a.conns:
		t.Fatalf("unexpected connection on %v from %v", a.ln.Addr(), c.RemoteAddr())
	default:
	}
}

// echoLine reads one line from c and answers reply+"\n"; it returns the line.
func echoLine(t *testing.T, c net.Conn, reply string) string {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %v: %v", c.RemoteAddr(), err)
	}
	if _, err := fmt.Fprintln(c, reply); err != nil {
		t.Fatalf("write to %v: %v", c.RemoteAddr(), err)
	}
	return strings.TrimSpace(line)
}

func remoteIP(c net.Conn) netip.Addr {
	return c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}
