package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LedgerDir holds one JSON ledger per live run, listing what the run created
// so that Close and CleanupStale can remove it. It is on /run (tmpfs), which
// a reboot clears together with the namespaces it lists.
const LedgerDir = "/run/ambit-e2e"

// ledger is the persisted record of one run. Resources are recorded before
// they are created, so a crash never leaves something unrecorded.
type ledger struct {
	RunID      string   `json:"runID"`
	OwnerPID   int      `json:"ownerPID"`
	OwnerStart uint64   `json:"ownerStart"` // /proc/<pid>/stat field 22, guards against pid reuse
	Netns      []string `json:"netns"`      // bind-mount paths, in creation order
	CgroupRoot string   `json:"cgroupRoot,omitempty"`
	Paths      []string `json:"paths,omitempty"` // e.g. bpffs pin directories
}

func ledgerPath(dir, runID string) string { return filepath.Join(dir, runID+".json") }

// save writes the ledger atomically (temp file + rename).
func (l *ledger) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	tmp := ledgerPath(dir, l.RunID) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	if err := os.Rename(tmp, ledgerPath(dir, l.RunID)); err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	return nil
}

func loadLedger(path string) (*ledger, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load ledger: %w", err)
	}
	var l ledger
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("load ledger %s: %w", path, err)
	}
	if err := validLedger(&l); err != nil {
		return nil, fmt.Errorf("load ledger %s: %w", path, err)
	}
	return &l, nil
}

// validLedger refuses ledgers that would make cleanup touch anything outside
// the directories a run can own: a corrupt ledger must not delete other files.
func validLedger(l *ledger) error {
	if l.RunID == "" || strings.ContainsAny(l.RunID, "/ ") {
		return fmt.Errorf("bad run ID %q", l.RunID)
	}
	for _, p := range l.Netns {
		if filepath.Dir(p) != NetnsDir || !strings.HasPrefix(filepath.Base(p), l.RunID+"-") {
			return fmt.Errorf("netns path %q not owned by run %s", p, l.RunID)
		}
	}
	if l.CgroupRoot != "" && filepath.Base(l.CgroupRoot) != "ambit-"+l.RunID {
		return fmt.Errorf("cgroup root %q not owned by run %s", l.CgroupRoot, l.RunID)
	}
	for _, p := range l.Paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.Count(p, "/") < 3 {
			return fmt.Errorf("cleanup path %q is not a deep absolute path", p)
		}
	}
	return nil
}

// procStartTime returns field 22 (starttime) of /proc/<pid>/stat, or 0 when
// the process does not exist.
func procStartTime(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	return v
}

// ownerAlive reports whether the process that wrote the ledger still runs.
func (l *ledger) ownerAlive() bool {
	st := procStartTime(l.OwnerPID)
	return st != 0 && st == l.OwnerStart
}

// teardown removes everything the ledger lists, in dependency order:
// processes (by cgroup, then by netns), registered paths, cgroups,
// namespaces (newest first). It returns every failure joined.
func (l *ledger) teardown() error {
	var errs []error
	if l.CgroupRoot != "" {
		errs = append(errs, killCgroupTree(l.CgroupRoot))
	}
	for _, ns := range l.Netns {
		if _, err := os.Stat(ns); err == nil {
			errs = append(errs, killNetnsProcs(ns))
		}
	}
	for i := len(l.Paths) - 1; i >= 0; i-- {
		errs = append(errs, unmountBelow(l.Paths[i]))
		if err := os.RemoveAll(l.Paths[i]); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", l.Paths[i], err))
		}
	}
	if l.CgroupRoot != "" {
		errs = append(errs, removeCgroupTree(l.CgroupRoot))
	}
	for i := len(l.Netns) - 1; i >= 0; i-- {
		errs = append(errs, deleteNetns(l.Netns[i]))
	}
	return errors.Join(errs...)
}

// CleanupStale removes the leftovers of dead runs whose run ID starts with
// prefix (for example "demo" matches runs of New("demo")): the namespaces,
// cgroups, processes and registered paths their ledgers list. Runs whose
// owner process is still alive are left alone. It returns the run IDs it
// cleaned and every failure joined.
func CleanupStale(prefix string) ([]string, error) {
	return cleanupStaleIn(LedgerDir, prefix)
}

func cleanupStaleIn(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup stale runs: %w", err)
	}
	var cleaned []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || !strings.HasPrefix(name, prefix) {
			continue
		}
		path := filepath.Join(dir, name)
		l, err := loadLedger(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.ownerAlive() {
			continue
		}
		if err := l.teardown(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup run %s: %w", l.RunID, err))
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cleanup run %s: %w", l.RunID, err))
			continue
		}
		cleaned = append(cleaned, l.RunID)
	}
	return cleaned, errors.Join(errs...)
}

// unmountBelow detaches every mount at or below dir (deepest first), such as a private
// bpffs a run mounted inside its directory, so that the directory can be removed.
func unmountBelow(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
