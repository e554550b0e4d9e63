package redirect

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// fakeDatapath records the steps the Manager takes; installPrograms creates the pod
// dir and removePrograms deletes it, as the kernel implementation does.
type fakeDatapath struct {
	calls   []string
	match   bool
	failAt  string
	openErr error
}

func (f *fakeDatapath) step(name string) error {
	f.calls = append(f.calls, name)
	if f.failAt == name {
		return errors.New(name + " failed")
	}
	return nil
}

func (f *fakeDatapath) matches(string, Pod) (bool, error) { return f.match, f.step("matches") }
func (f *fakeDatapath) installPrograms(dir string, _ Pod) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return f.step("installPrograms")
}
func (f *fakeDatapath) update(string, Pod) error              { return f.step("update") }
func (f *fakeDatapath) installRouting(string, Pod) error      { return f.step("installRouting") }
func (f *fakeDatapath) attachConnect4(_, cgroup string) error { return f.step("attachConnect4") }
func (f *fakeDatapath) detachConnect4(string) error           { return f.step("detachConnect4") }
func (f *fakeDatapath) removeRouting(string) error            { return f.step("removeRouting") }
func (f *fakeDatapath) removePrograms(dir string) error {
	os.RemoveAll(dir)
	return f.step("removePrograms")
}
func (f *fakeDatapath) openSockMap(string) (*ebpf.Map, error) {
	f.calls = append(f.calls, "openSockMap")
	return nil, f.openErr
}

func testPod() Pod {
	return Pod{UID: "0b4c7c2e-1111-4e5e-9d7b-3f6a2b1c0d9e", Netns: "/run/netns/x", Cgroup: "/sys/fs/cgroup/kubepods/pod1",
		IP: netip.MustParseAddr("10.0.0.5"), ProbeSources: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
}

var teardownSteps = []string{"detachConnect4", "removeRouting", "removePrograms"}

func TestEnrolSteps(t *testing.T) {
	tests := []struct {
		name      string
		match     bool
		staleDir  bool
		failAt    string
		wantErr   bool
		wantCalls []string
	}{
		{name: "fresh", wantCalls: []string{"matches", "installPrograms", "installRouting", "attachConnect4", "openSockMap"}},
		{name: "already enrolled", match: true, staleDir: true,
			wantCalls: []string{"matches", "update", "installRouting", "attachConnect4", "openSockMap"}},
		{name: "stale pins replaced", staleDir: true, wantCalls: slices.Concat([]string{"matches"}, teardownSteps,
			[]string{"installPrograms", "installRouting", "attachConnect4", "openSockMap"})},
		{name: "routing failure rolls back", failAt: "installRouting", wantErr: true,
			wantCalls: slices.Concat([]string{"matches", "installPrograms", "installRouting"}, teardownSteps)},
		{name: "connect4 failure rolls back", failAt: "attachConnect4", wantErr: true,
			wantCalls: slices.Concat([]string{"matches", "installPrograms", "installRouting", "attachConnect4"}, teardownSteps)},
		{name: "refresh failure keeps pins", match: true, staleDir: true, failAt: "installRouting", wantErr: true,
			wantCalls: []string{"matches", "update", "installRouting"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeDatapath{match: tc.match, failAt: tc.failAt}
			m := &Manager{PinDir: t.TempDir(), dp: fake}
			p := testPod()
			if tc.staleDir {
				if err := os.Mkdir(filepath.Join(m.PinDir, p.UID), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			_, err := m.Enrol(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("enrol error = %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(fake.calls, tc.wantCalls) {
				t.Fatalf("calls = %v\nwant    %v", fake.calls, tc.wantCalls)
			}
		})
	}
}

func TestUnenrol(t *testing.T) {
	fake := &fakeDatapath{}
	m := &Manager{PinDir: t.TempDir(), dp: fake}
	p := testPod()
	if err := m.Unenrol(p.UID); err != nil {
		t.Fatalf("unenrol unknown pod: %v", err)
	}
	if len(fake.calls) != 0 {
		t.Fatalf("unknown pod touched the datapath: %v", fake.calls)
	}
	if _, err := m.Enrol(p); err != nil {
		t.Fatal(err)
	}
	if uids, err := m.Enrolled(); err != nil || !slices.Equal(uids, []string{p.UID}) {
		t.Fatalf("enrolled = %v, %v", uids, err)
	}
	fake.calls = nil
	if err := m.Unenrol(p.UID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fake.calls, teardownSteps) {
		t.Fatalf("unenrol calls = %v, want %v", fake.calls, teardownSteps)
	}
	if uids, err := m.Enrolled(); err != nil || len(uids) != 0 {
		t.Fatalf("enrolled after unenrol = %v, %v", uids, err)
	}
}

func TestStopCapture(t *testing.T) {
	fake := &fakeDatapath{}
	m := &Manager{PinDir: t.TempDir(), dp: fake}
	if err := m.StopCapture(testPod().UID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fake.calls, []string{"detachConnect4"}) {
		t.Fatalf("calls = %v", fake.calls)
	}
}

func TestSockMapNotEnrolled(t *testing.T) {
	m := &Manager{PinDir: t.TempDir(), dp: &fakeDatapath{openErr: os.ErrNotExist}}
	if _, err := m.SockMap(testPod().UID); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("err = %v, want ErrNotEnrolled", err)
	}
}

func TestEnrolledMissingDir(t *testing.T) {
	m := &Manager{PinDir: filepath.Join(t.TempDir(), "absent")}
	if uids, err := m.Enrolled(); err != nil || uids != nil {
		t.Fatalf("enrolled = %v, %v", uids, err)
	}
}

func TestInvalidPods(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Pod)
	}{
		{"empty uid", func(p *Pod) { p.UID = "" }},
		{"uid with slash", func(p *Pod) { p.UID = "../etc" }},
		{"dot uid", func(p *Pod) { p.UID = ".." }},
		{"long uid", func(p *Pod) { p.UID = strings.Repeat("a", 129) }},
		{"relative netns", func(p *Pod) { p.Netns = "netns/x" }},
		{"relative cgroup", func(p *Pod) { p.Cgroup = "kubepods" }},
		{"no ip", func(p *Pod) { p.IP = netip.Addr{} }},
		{"ipv6", func(p *Pod) { p.IP = netip.MustParseAddr("fd00::5") }},
		{"unspecified", func(p *Pod) { p.IP = netip.IPv4Unspecified() }},
		{"bad probe", func(p *Pod) { p.ProbeSources = []netip.Addr{{}} }},
		{"too many probes", func(p *Pod) { p.ProbeSources = make([]netip.Addr, 5) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeDatapath{}
			m := &Manager{PinDir: t.TempDir(), dp: fake}
			p := testPod()
			tc.mutate(&p)
			if _, err := m.Enrol(p); !errors.Is(err, ErrInvalidPod) {
				t.Fatalf("enrol err = %v, want ErrInvalidPod", err)
			}
			if len(fake.calls) != 0 {
				t.Fatalf("invalid pod touched the datapath: %v", fake.calls)
			}
		})
	}
}

func TestParseCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "unified", in: "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n", want: "/sys/fs/cgroup"},
		{name: "hybrid", in: "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
			"40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", want: "/sys/fs/cgroup/unified"},
		{name: "v1 only", in: "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", wantErr: true},
		{name: "truncated", in: "1 2 - cgroup2 x\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCgroup2Mount(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parse = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseCgroup2Mount(f *testing.F) {
	f.Add("40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add(" - cgroup2 ")
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := parseCgroup2Mount(s); err == nil && got == "" {
			t.Fatalf("empty mount point without error for %q", s)
		}
	})
}
