package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestValidLedger(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    ledger
		ok   bool
	}{
		{"ok", ledger{RunID: "demo-abc123", Netns: []string{"/run/netns/demo-abc123-fabric"}, CgroupRoot: "/sys/fs/cgroup/ambit-demo-abc123", Paths: []string{"/sys/fs/bpf/ambit/demo-abc123"}}, true},
		{"empty run", ledger{}, false},
		{"slash run", ledger{RunID: "a/b"}, false},
		{"foreign netns", ledger{RunID: "demo-abc123", Netns: []string{"/run/netns/other"}}, false},
		{"netns outside dir", ledger{RunID: "demo-abc123", Netns: []string{"/tmp/demo-abc123-x"}}, false},
		{"foreign cgroup", ledger{RunID: "demo-abc123", CgroupRoot: "/sys/fs/cgroup"}, false},
		{"root path", ledger{RunID: "demo-abc123", Paths: []string{"/"}}, false},
		{"shallow path", ledger{RunID: "demo-abc123", Paths: []string{"/sys/fs"}}, false},
		{"relative path", ledger{RunID: "demo-abc123", Paths: []string{"a/b/c/d"}}, false},
		{"unclean path", ledger{RunID: "demo-abc123", Paths: []string{"/sys/fs/bpf/../../etc"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validLedger(&tc.l); (err == nil) != tc.ok {
				t.Fatalf("validLedger = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestProcStartTime(t *testing.T) {
	if procStartTime(os.Getpid()) == 0 {
		t.Fatal("no start time for self")
	}
	if procStartTime(-1) != 0 {
		t.Fatal("start time for a missing pid")
	}
}

// TestCleanupStaleLedgers checks that only dead owners' ledgers (of the
// prefix) are cleaned; the ledgers list no resources, so nothing but the
// ledger files is touched.
func TestCleanupStaleLedgers(t *testing.T) {
	dir := t.TempDir()
	self := os.Getpid()
	for _, l := range []ledger{
		{RunID: "t-dead01", OwnerPID: self, OwnerStart: 1}, // start time mismatch: pid reused
		{RunID: "t-live01", OwnerPID: self, OwnerStart: procStartTime(self)},
		{RunID: "other-dead01", OwnerPID: self, OwnerStart: 1},
	} {
		if err := l.save(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "t-bad.json"), []byte(`{"runID":"t-bad","paths":["/"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cleaned, err := cleanupStaleIn(dir, "t-")
	if err == nil || !strings.Contains(err.Error(), "t-bad") {
		t.Errorf("want an error about the corrupt ledger, got %v", err)
	}
	if !slices.Equal(cleaned, []string{"t-dead01"}) {
		t.Errorf("cleaned %v, want [t-dead01]", cleaned)
	}
	for name, want := range map[string]bool{"t-dead01": false, "t-live01": true, "other-dead01": true, "t-bad": true} {
		_, err := os.Stat(ledgerPath(dir, name))
		if (err == nil) != want {
			t.Errorf("ledger %s exists = %v, want %v", name, err == nil, want)
		}
	}
}

func TestCleanupStaleMissingDir(t *testing.T) {
	cleaned, err := cleanupStaleIn(filepath.Join(t.TempDir(), "none"), "x")
	if err != nil || len(cleaned) != 0 {
		t.Fatalf("cleanupStaleIn(missing) = %v, %v", cleaned, err)
	}
}

func TestParseCgroup2Mount(t *testing.T) {
	for _, tc := range []struct {
		name, mounts, want string
		wantErr            bool
	}{
		{"unified", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "/sys/fs/cgroup", false},
		{"hybrid", "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n", "/sys/fs/cgroup/unified", false},
		{"v1 only", "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCgroup2Mount(strings.NewReader(tc.mounts))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseCgroup2Mount = %q, %v", got, err)
			}
		})
	}
}
