package cluster

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultBPFFS is where the node agents pin their eBPF objects
// (--bpf-pin-dir /sys/fs/bpf/ambit/<node>).
const DefaultBPFFS = "/sys/fs/bpf"

// EnsureBPFFS mounts a bpf filesystem at dir unless one is already there,
// as systemd does at boot on most distributions (some machines, like
// minimal VMs, boot without it). It is a machine-wide change that is left
// in place: the mount is shared by every run and holds no state of its own.
func EnsureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ensure bpffs: %w", err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("ensure bpffs: mount %s: %w", dir, err)
	}
	return nil
}
