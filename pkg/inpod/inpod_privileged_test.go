package inpod_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/inpod"
	"github.com/ambitmesh/ambit/pkg/inpod/inpodtest"
)

func threadNetnsInode(t *testing.T) uint64 {
	t.Helper()
	ns, err := inpod.OpenNetns("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ino, err := ns.Inode()
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestPrivilegedNetnsDo(t *testing.T) {
	inpodtest.RequireRoot(t)
	ns := inpodtest.NewNetns(t)
	want, err := ns.Inode()
	if err != nil {
		t.Fatal(err)
	}
	host := threadNetnsInode(t)
	var inside uint64
	if err := ns.Do(func() error { inside = threadNetnsInode(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != want || inside == host {
		t.Fatalf("inside Do netns inode = %d, want %d (host %d)", inside, want, host)
	}
	if got := threadNetnsInode(t); got != host {
		t.Fatalf("caller moved to netns %d", got)
	}
	sentinel := fmt.Errorf("sentinel")
	if err := ns.Do(func() error { return sentinel }); err != sentinel {
		t.Fatalf("Do error = %v, want fn's", err)
	}
}

// TestPrivilegedListenDialStayInNetns checks sockets made by Listen and Dial live in
// the namespace: the listener is reachable on the namespace's loopback from another
// goroutine after Do returned, and not from the host's.
func TestPrivilegedListenDialStayInNetns(t *testing.T) {
	inpodtest.RequireRoot(t)
	ns := inpodtest.NewNetns(t)
	ln, err := ns.Listen(0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, io.LimitReader(c, 4))
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The host's loopback has no such listener (unless a host process took the port).
	if hc, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		hc.Close()
		t.Logf("host port %d is open too; not conclusive", port)
	}
}
