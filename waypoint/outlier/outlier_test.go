package outlier

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// clock is a manually advanced time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func detector(t *testing.T, consecutive, maxPct uint32) (*Detector, *clock) {
	t.Helper()
	c := &clock{now: time.Unix(1_000_000, 0)}
	d, err := New(&clusterv3.OutlierDetection{
		Consecutive_5Xx:    wrapperspb.UInt32(consecutive),
		Interval:           durationpb.New(5 * time.Second),
		BaseEjectionTime:   durationpb.New(10 * time.Second),
		MaxEjectionPercent: wrapperspb.UInt32(maxPct),
	}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func fail(d *Detector, host string, n int) {
	for i := 0; i < n; i++ {
		d.Report(host, 503, false)
	}
}

func TestEjectAndReturn(t *testing.T) {
	d, c := detector(t, 3, 100)
	hosts := []string{"a:80", "b:80", "c:80"}
	d.Available(hosts)
	fail(d, "a:80", 2)
	d.Report("a:80", 200, false) // resets the streak
	fail(d, "a:80", 2)
	if got := d.Available(hosts); len(got) != 3 {
		t.Fatalf("ejected too early: %v", got)
	}
	d.Report("a:80", 0, true) // connect failure counts
	if got := d.Available(hosts); !slices.Equal(got, []string{"b:80", "c:80"}) {
		t.Fatalf("available %v, want a ejected", got)
	}
	c.Advance(10*time.Second - time.Millisecond)
	if !d.Ejected("a:80") {
		t.Fatal("returned before base_ejection_time")
	}
	c.Advance(time.Millisecond)
	if d.Ejected("a:80") {
		t.Fatal("still ejected after base_ejection_time")
	}
	// A second ejection right away lasts twice as long.
	fail(d, "a:80", 3)
	c.Advance(19 * time.Second)
	if !d.Ejected("a:80") {
		t.Fatal("second ejection shorter than 2x base")
	}
	c.Advance(time.Second)
	if d.Ejected("a:80") {
		t.Fatal("second ejection longer than 2x base")
	}
	// Healthy for two intervals (5s each): the multiplier decays from 2 to
	// 0, so the next ejection lasts 1x base again.
	c.Advance(10 * time.Second)
	fail(d, "a:80", 3)
	c.Advance(10 * time.Second)
	if d.Ejected("a:80") {
		t.Fatal("multiplier did not decay while healthy")
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		pct     uint32
		hosts   int
		failing int
		ejected int
	}{
		{name: "default 10% of 3 ejects none", pct: 10, hosts: 3, failing: 3, ejected: 0},
		{name: "50% of 4 ejects 2", pct: 50, hosts: 4, failing: 4, ejected: 2},
		{name: "34% of 3 ejects 1", pct: 34, hosts: 3, failing: 3, ejected: 1},
		{name: "100% of 2 ejects 2, then panic", pct: 100, hosts: 2, failing: 2, ejected: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := detector(t, 1, tc.pct)
			var hosts []string
			for i := 0; i < tc.hosts; i++ {
				hosts = append(hosts, string(rune('a'+i))+":80")
			}
			d.Available(hosts)
			for i := 0; i < tc.failing; i++ {
				fail(d, hosts[i], 1)
			}
			n := 0
			for _, h := range hosts {
				if d.Ejected(h) {
					n++
				}
			}
			if n != tc.ejected {
				t.Fatalf("ejected %d, want %d", n, tc.ejected)
			}
			got := d.Available(hosts)
			if want := tc.hosts - tc.ejected; want > 0 && len(got) != want {
				t.Fatalf("available %v, want %d hosts", got, want)
			}
			if tc.ejected == tc.hosts && !slices.Equal(got, hosts) {
				t.Fatalf("panic mode: available %v, want all", got)
			}
		})
	}
}

func TestDepartedHostsForgotten(t *testing.T) {
	d, _ := detector(t, 1, 100)
	d.Available([]string{"a:80", "b:80"})
	fail(d, "a:80", 1)
	d.Available([]string{"b:80", "c:80"})
	if got := d.Available([]string{"a:80", "b:80"}); len(got) != 2 {
		t.Fatalf("state of a departed host survived: %v", got)
	}
}

func TestNilAndDefaults(t *testing.T) {
	d, err := New(nil, nil)
	if err != nil || d != nil {
		t.Fatalf("New(nil) = %v, %v", d, err)
	}
	d.Report("a", 500, false)
	if got := d.Available([]string{"a"}); len(got) != 1 || d.Ejected("a") {
		t.Fatal("nil detector ejected")
	}
	def, err := New(&clusterv3.OutlierDetection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.consecutive5xx != 5 || def.interval != 10*time.Second || def.baseEjection != 30*time.Second || def.maxEjectPercent != 10 {
		t.Fatalf("defaults %+v", def)
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name        string
		od          *clusterv3.OutlierDetection
		want        string
		unsupported bool
	}{
		{name: "enforcing", od: &clusterv3.OutlierDetection{EnforcingConsecutive_5Xx: wrapperspb.UInt32(50)}, want: "enforcing_consecutive_5xx", unsupported: true},
		{name: "gateway failure", od: &clusterv3.OutlierDetection{ConsecutiveGatewayFailure: wrapperspb.UInt32(1)}, want: "consecutive_gateway_failure", unsupported: true},
		{name: "split local origin", od: &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true}, want: "split_external_local_origin_errors", unsupported: true},
		{name: "percent over 100", od: &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(101)}, want: "above 100"},
		{name: "zero interval", od: &clusterv3.OutlierDetection{Interval: durationpb.New(0)}, want: "interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.od, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Fatalf("ErrUnsupported mismatch: %v", err)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	d, c := detector(t, 2, 50)
	hosts := []string{"a:80", "b:80", "c:80", "d:80"}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				h := hosts[(g+i)%len(hosts)]
				d.Report(h, 500+i%2*(-300), i%7 == 0)
				if got := d.Available(hosts); len(got) == 0 {
					t.Error("no host available")
					return
				}
				if i%50 == 0 {
					c.Advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
}
