package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind mounted, the same
// directory `ip netns` uses, so `ip netns list` shows the cluster's namespaces.
const NetnsDir = "/run/netns"

// killWait bounds how long cleanup waits for killed processes to disappear.
const killWait = 10 * time.Second

// InNetns runs fn on an OS thread that has joined the network namespace at
// netnsPath, and returns fn's error. The caller blocks until fn returns.
// Sockets fn creates stay in that namespace after InNetns returns. fn runs on
// its own goroutine, locked to its thread; if the thread cannot be put back
// into its original namespace it is left locked so that the Go runtime
// destroys it instead of reusing it. Goroutines fn starts do not inherit the
// namespace. A panic in fn is re-raised in the caller.
func InNetns(netnsPath string, fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(netnsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open netns %s: %w", netnsPath, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter netns %s: %w", netnsPath, err)}
			return
		}
		var res result
		func() {
			defer func() { res.panic = recover() }()
			res.err = fn()
		}()
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: it dies with this goroutine.
			res.err = errors.Join(res.err, fmt.Errorf("restore netns: %w", err))
			done <- res
			return
		}
		runtime.UnlockOSThread()
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// createNetns makes a new network namespace bind mounted at path (like
// `ip netns add`), with lo up. The calling thread's namespace is untouched.
func createNetns(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		mountErr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			done <- errors.Join(mountErr, fmt.Errorf("restore netns: %w", err)) // thread dies locked
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount netns: %w", mountErr)
		}
		done <- mountErr
	}()
	if err := <-done; err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	return nil
}

// deleteNetns kills every process left in the namespace at path, then
// unmounts and removes it (like `ip netns delete`). A missing path is not an
// error. The kernel frees the namespace, and every link in it, once nothing
// references it.
func deleteNetns(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if err := killNetnsProcs(path); err != nil {
		errs = append(errs, err)
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmount netns %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove netns %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// netnsID identifies a namespace by the device and inode of its nsfs file.
type netnsID struct{ dev, ino uint64 }

func statNetns(path string) (netnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return netnsID{}, err
	}
	return netnsID{dev: st.Dev, ino: st.Ino}, nil
}

// netnsPids lists processes whose network namespace is the one mounted at path.
func netnsPids(path string) ([]int, error) {
	want, err := statNetns(path)
	if err != nil {
		return nil, fmt.Errorf("stat netns %s: %w", path, err)
	}
	if want.ino == 0 {
		return nil, nil
	}
	var statfs unix.Statfs_t
	if err := unix.Statfs(path, &statfs); err != nil || statfs.Type != unix.NSFS_MAGIC {
		return nil, nil // not (or no longer) a mounted namespace
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNetns("/proc/" + e.Name() + "/ns/net")
		if err == nil && id == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsProcs SIGKILLs every process in the namespace at path and waits,
// up to killWait, until none is left.
func killNetnsProcs(path string) error {
	deadline := time.Now().Add(killWait)
	for {
		pids, err := netnsPids(path)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in netns %s after SIGKILL", pids, path)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the kernel reaps
	}
}
