// Package inpod holds the socket helpers ztunnel uses inside enrolled pods' network
// namespaces: entering a pod netns on a locked OS thread, opening the in-pod
// listeners (15001/15006/15008) and registering them in the pod's redirection
// SOCKMAP, dialing out of the pod uncaptured, and delivering to the app with the
// client's source IP. The mechanics follow shared/spec/redirection.md.
//
// Sockets created inside a namespace stay in it after the thread leaves, so the
// returned listeners and connections may be used from any goroutine.
package inpod

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Netns is an open handle on a network namespace. The zero value is not usable;
// build one with OpenNetns or NetnsFromFile and Close it when done.
type Netns struct {
	f *os.File
}

// OpenNetns opens the network namespace at path (/run/netns/<name>,
// /proc/<pid>/ns/net, or /proc/self/fd/<n>) and checks that it is one.
func OpenNetns(path string) (*Netns, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("open netns %s: not a namespace file", path)
	}
	return &Netns{f: f}, nil
}

// NetnsFromFile wraps a network namespace file descriptor received from the node
// agent (e.g. over the ZDS socket). The Netns takes ownership: Close closes f.
func NetnsFromFile(f *os.File) *Netns {
	return &Netns{f: f}
}

// Fd returns the namespace file descriptor; it stays owned by n.
func (n *Netns) Fd() int {
	return int(n.f.Fd())
}

// Inode returns the namespace's inode number, which identifies it (the same number
// `ip netns identify` and bpf netns links report).
func (n *Netns) Inode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(n.Fd(), &st); err != nil {
		return 0, fmt.Errorf("stat netns: %w", err)
	}
	return st.Ino, nil
}

// Close releases the namespace handle; sockets created inside stay open.
func (n *Netns) Close() error {
	return n.f.Close()
}

// Do runs fn on a locked OS thread that has joined n, then moves the thread back to
// its original namespace. Sockets fn creates belong to n. If the thread cannot be
// restored it is discarded rather than reused. The error is fn's, or the setns
// failure.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Not unlocking on failure makes the runtime discard the thread at goroutine exit.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
