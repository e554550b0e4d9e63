package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// TestChangedPodCoversEveryPod: the churn visits every pod once before any twice.
func TestChangedPodCoversEveryPod(t *testing.T) {
	const pods = 10000
	seen := make([]bool, pods)
	for k := 1; k <= pods; k++ {
		p := changedPod(k, pods)
		if seen[p] {
			t.Fatalf("pod %d changed twice within %d changes", p, pods)
		}
		seen[p] = true
	}
}

// TestTrackerLatencies: a change counts once every client has it, measured from its
// write to the last client; a change some client lacks is missing.
func TestTrackerLatencies(t *testing.T) {
	tr := newTracker(2)
	t0 := time.Unix(100, 0)
	done := tr.expect(1, t0)
	tr.delivered(1, t0.Add(10*time.Millisecond))
	select {
	case <-done:
		t.Fatal("done after one of two clients")
	default:
	}
	tr.delivered(1, t0.Add(30*time.Millisecond))
	<-done
	tr.expect(2, t0)
	tr.delivered(2, t0.Add(5*time.Millisecond))
	last, first, missing := tr.latencies(1, 3)
	if len(last) != 1 || last[0] != 30*time.Millisecond || first[0] != 10*time.Millisecond || missing != 1 {
		t.Fatalf("last %v first %v missing %d, want [30ms] [10ms] 1", last, first, missing)
	}
	if got := pct([]time.Duration{3 * time.Millisecond, 1 * time.Millisecond, 2 * time.Millisecond}, 50); got != 2 {
		t.Fatalf("p50 = %v, want 2", got)
	}
}

// TestFileSourceWritesWhatIstiodReads: the config directory loads (as istiod-lite's
// file source reads it) into the synthetic objects, and a change rewrites only the
// changed pod's revision.
func TestFileSourceWritesWhatIstiodReads(t *testing.T) {
	dir := t.TempDir()
	s, err := newFileSource(dir, 25, 5)
	if err != nil {
		t.Fatal(err)
	}
	var l kubefile.Loader
	snap, err := l.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pods) != 25 || len(snap.Services) != 5 || len(snap.Namespaces) != Namespaces {
		t.Fatalf("loaded %d pods, %d services, %d namespaces", len(snap.Pods), len(snap.Services), len(snap.Namespaces))
	}
	if err := s.change(context.Background(), 7, revision(3)); err != nil {
		t.Fatal(err)
	}
	snap, err = l.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range snap.Pods {
		want := revision(0)
		if p.Name == podName(7) {
			want = revision(3)
		}
		if got := p.Labels[revisionLabel]; got != want {
			t.Errorf("%s: revision %q, want %q", p.Name, got, want)
		}
	}
}
