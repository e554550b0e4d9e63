package redirect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	bpfredirect "github.com/ambitmesh/ambit/bpf/redirect"
	"github.com/ambitmesh/ambit/pkg/inpod"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Names of the objects pinned in a pod's directory.
const (
	pinSockMap     = "sockmap"        // listener SOCKMAP, opened by SockMap
	pinConfig      = "config"         // config ARRAY
	pinSkLookup    = "sk_lookup_link" // sk_lookup attached to the pod netns
	pinConnect4    = "connect4_prog"  // connect4 program, kept to re-attach after StopCapture
	pinConnect4Lnk = "connect4_link"  // connect4 attached to the pod cgroup
	pinNetns       = "netns"          // symlink to the pod netns path, for Unenrol
)

// datapath is the seam between the enrolment logic in manager.go and the kernel.
// Every method is idempotent; dir is the pod's pin directory.
type datapath interface {
	// matches reports whether dir holds programs attached to p's netns.
	matches(dir string, p Pod) (bool, error)
	// installPrograms loads a collection, writes its config, pins the maps and the
	// connect4 program, attaches and pins sk_lookup, and records the netns path.
	installPrograms(dir string, p Pod) error
	// update rewrites the pinned config and the recorded netns path.
	update(dir string, p Pod) error
	// installRouting adds the capture rule and route and sets tcp_fwmark_accept.
	installRouting(dir string, p Pod) error
	// attachConnect4 attaches the pinned connect4 program to cgroup (replacing an
	// attachment to another cgroup).
	attachConnect4(dir, cgroup string) error
	detachConnect4(dir string) error
	// removeRouting deletes the rule and route in the recorded netns, if it still
	// exists and is the one sk_lookup is attached to.
	removeRouting(dir string) error
	// removePrograms detaches sk_lookup and removes dir.
	removePrograms(dir string) error
	openSockMap(dir string) (*ebpf.Map, error)
}

// kernelDatapath implements datapath with cilium/ebpf, netlink and bpffs pins.
type kernelDatapath struct{}

func (kernelDatapath) matches(dir string, p Pod) (bool, error) {
	for _, name := range []string{pinSockMap, pinConfig, pinConnect4} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false, nil
		}
	}
	ino, err := linkNetnsInode(dir)
	if err != nil {
		return false, nil
	}
	want, err := fileInode(p.Netns)
	if err != nil {
		return false, fmt.Errorf("stat netns: %w", err)
	}
	return ino == want, nil
}

func (kernelDatapath) installPrograms(dir string, p Pod) error {
	ns, err := inpod.OpenNetns(p.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	cfg, err := podConfig(ns, p)
	if err != nil {
		return err
	}
	objs, err := bpfredirect.Load()
	if err != nil {
		return err
	}
	defer objs.Close()
	if err := bpfredirect.WriteConfig(objs.ConfigMap, cfg); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create pod pin dir: %w", err)
	}
	for name, pin := range map[string]interface{ Pin(string) error }{
		pinSockMap: objs.Listeners, pinConfig: objs.ConfigMap, pinConnect4: objs.Connect4,
	} {
		if err := pin.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin %s: %w", name, err)
		}
	}
	l, err := link.AttachNetNs(ns.Fd(), objs.SkLookup)
	if err != nil {
		return fmt.Errorf("attach sk_lookup to pod netns: %w", err)
	}
	defer l.Close()
	if err := l.Pin(filepath.Join(dir, pinSkLookup)); err != nil {
		return fmt.Errorf("pin sk_lookup link: %w", err)
	}
	return recordNetns(dir, p.Netns)
}

func (kernelDatapath) update(dir string, p Pod) error {
	ns, err := inpod.OpenNetns(p.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	cfg, err := podConfig(ns, p)
	if err != nil {
		return err
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinConfig), nil)
	if err != nil {
		return fmt.Errorf("open pinned config: %w", err)
	}
	defer m.Close()
	if err := bpfredirect.WriteConfig(m, cfg); err != nil {
		return err
	}
	return recordNetns(dir, p.Netns)
}

func (kernelDatapath) attachConnect4(dir, cgroup string) error {
	want, err := fileInode(cgroup)
	if err != nil {
		return fmt.Errorf("stat pod cgroup: %w", err)
	}
	if l, err := link.LoadPinnedLink(filepath.Join(dir, pinConnect4Lnk), nil); err == nil {
		info, ierr := l.Info()
		l.Close()
		if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == want {
			return nil
		}
		if err := detachPinnedLink(filepath.Join(dir, pinConnect4Lnk)); err != nil {
			return err
		}
	}
	prog, err := ebpf.LoadPinnedProgram(filepath.Join(dir, pinConnect4), nil)
	if err != nil {
		return fmt.Errorf("open pinned connect4: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: ebpf.AttachCGroupInet4Connect, Program: prog})
	if err != nil {
		return fmt.Errorf("attach connect4 to %s: %w", cgroup, err)
	}
	defer l.Close()
	if err := l.Pin(filepath.Join(dir, pinConnect4Lnk)); err != nil {
		return errors.Join(fmt.Errorf("pin connect4 link: %w", err), l.Detach())
	}
	return nil
}

func (kernelDatapath) detachConnect4(dir string) error {
	return detachPinnedLink(filepath.Join(dir, pinConnect4Lnk))
}

func (kernelDatapath) removePrograms(dir string) error {
	if err := detachPinnedLink(filepath.Join(dir, pinSkLookup)); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pins: %w", err)
	}
	return nil
}

func (kernelDatapath) openSockMap(dir string) (*ebpf.Map, error) {
	return ebpf.LoadPinnedMap(filepath.Join(dir, pinSockMap), nil)
}

// detachPinnedLink detaches and unpins the link pinned at path; a missing pin is fine.
func detachPinnedLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned link %s: %w", filepath.Base(path), err)
	}
	defer l.Close()
	if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("detach %s: %w", filepath.Base(path), err)
	}
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", filepath.Base(path), err)
	}
	return nil
}

// podConfig builds the program config for p; lo's ifindex is read inside ns.
func podConfig(ns *inpod.Netns, p Pod) (bpfredirect.Config, error) {
	lo, err := loIndex(ns)
	if err != nil {
		return bpfredirect.Config{}, err
	}
	return bpfredirect.Config{
		PodIP:        p.IP,
		LoIfindex:    lo,
		Mark:         wire.MarkCapture,
		HBONEPort:    wire.PortHBONE,
		ProbeSources: p.ProbeSources,
	}, nil
}

// recordNetns stores path as a symlink in the pin dir (bpffs allows symlinks but
// no regular files), so Unenrol can find the netns after an agent restart.
func recordNetns(dir, path string) error {
	link := filepath.Join(dir, pinNetns)
	if cur, err := os.Readlink(link); err == nil && cur == path {
		return nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("record netns path: %w", err)
	}
	if err := os.Symlink(path, link); err != nil {
		return fmt.Errorf("record netns path: %w", err)
	}
	return nil
}

// linkNetnsInode returns the inode of the netns the pinned sk_lookup link is attached to.
func linkNetnsInode(dir string) (uint64, error) {
	l, err := link.LoadPinnedLink(filepath.Join(dir, pinSkLookup), nil)
	if err != nil {
		return 0, fmt.Errorf("open pinned sk_lookup link: %w", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0, fmt.Errorf("sk_lookup link info: %w", err)
	}
	if info.NetNs() == nil {
		return 0, errors.New("sk_lookup link has no netns info")
	}
	return uint64(info.NetNs().NetnsInode), nil
}

func fileInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}
