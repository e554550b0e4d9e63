package inpod

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestOriginalDestination(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := ln.Addr().(*net.TCPAddr).AddrPort()
	if got := OriginalDestination(s); got != want {
		t.Fatalf("original destination = %v, want %v", got, want)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if got := OriginalDestination(p1); got.IsValid() {
		t.Fatalf("pipe original destination = %v, want zero", got)
	}
}

type fakeListener struct{ net.Listener }

func (fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestRegisterListenersRejectsNonSockets(t *testing.T) {
	err := RegisterListeners(nil, fakeListener{}, nil)
	if !errors.Is(err, ErrNotTCP) {
		t.Fatalf("err = %v, want ErrNotTCP", err)
	}
	if err := RegisterListeners(nil, nil, nil); err != nil {
		t.Fatalf("nil listeners: %v", err)
	}
}

func TestOpenNetnsRejectsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenNetns(path); err == nil {
		t.Fatal("opened a regular file as a netns")
	}
	if _, err := OpenNetns(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent path: %v", err)
	}
}

func TestDialRejectsIPv6(t *testing.T) {
	ns, err := OpenNetns("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no netns file: %v", err)
	}
	defer ns.Close()
	if _, err := ns.Dial(context.Background(), netip.MustParseAddrPort("[::1]:80")); err == nil {
		t.Fatal("dialed IPv6")
	}
}
