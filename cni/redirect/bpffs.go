package redirect

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// MountBPFFS makes sure dir is on a bpffs, mounting a bpffs instance there if it is
// not (the pin directory must be bpffs; some hosts do not mount /sys/fs/bpf). It
// returns whether it mounted; the caller that mounted may unmount with unix.Unmount.
func MountBPFFS(dir string) (mounted bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("mount bpffs: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("mount bpffs: statfs %s: %w", dir, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return true, nil
}

// CgroupV2Root returns the mount point of the cgroup v2 hierarchy: /sys/fs/cgroup on
// unified hosts, /sys/fs/cgroup/unified on hybrid ones. Pod cgroups live below it.
func CgroupV2Root() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup v2: %w", err)
	}
	return parseCgroup2Mount(string(data))
}

func parseCgroup2Mount(mountinfo string) (string, error) {
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", errors.New("find cgroup v2: no cgroup2 mount")
}
