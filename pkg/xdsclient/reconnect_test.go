package xdsclient

import (
	"context"
	"errors"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// TestReconnectSendsVersions stops the control plane and starts a new one (fresh caches,
// same content except one change and one deletion made while the client was away). The
// client must reconnect by itself, report what it holds, and receive only the difference.
func TestReconnectSendsVersions(t *testing.T) {
	f := newFixture(t)
	mustUpdate(t, f.a, map[string]types.Resource{"keep": res("k"), "change": res("c1"), "gone": res("g")})
	c := f.client(t)
	runClient(t, c)
	waitSynced(t, c)
	before, _ := f.store.snapshot()

	f.cp.g.Stop()
	a2, b2 := newCache(typeA), newCache(typeB)
	mustUpdate(t, a2, map[string]types.Resource{"keep": res("k"), "change": res("c2"), "new": res("n")})
	cp2 := startControlPlane(t, map[string]*cachev3.LinearCache{typeA: a2, typeB: b2})
	f.addr.Store(&cp2.addr)

	eventually(t, "reconnect responses", func() bool { calls, _ := f.store.snapshot(); return len(calls) >= len(before)+2 })
	calls, state := f.store.snapshot()
	for _, got := range calls[len(before):] {
		switch got.typeURL {
		case typeA:
			if !slices.Equal(got.upserts, []string{"change", "new"}) || !slices.Equal(got.removed, []string{"gone"}) {
				t.Errorf("typeA after reconnect = %+v, want upserts change,new and removal of gone", got)
			}
		case typeB:
			if len(got.upserts)+len(got.removed) != 0 {
				t.Errorf("typeB after reconnect = %+v, want empty", got)
			}
		}
	}
	if want := []string{"change", "keep", "new"}; !slices.Equal(state[typeA], want) {
		t.Errorf("state = %v, want %v", state[typeA], want)
	}
	var first *discoveryv3.DeltaDiscoveryRequest
	for _, r := range cp2.received() {
		if r.GetTypeUrl() == typeA {
			first = r
			break
		}
	}
	if got := first.GetInitialResourceVersions(); len(got) != 3 || got["keep"] == "" {
		t.Errorf("initial_resource_versions = %v, want the three held resources", got)
	}
}

func TestNotSyncedUntilAccepted(t *testing.T) {
	f := newFixture(t)
	mustUpdate(t, f.a, map[string]types.Resource{"x": res("1")})
	f.store.reject = func(typeURL string, _ []*discoveryv3.Resource) error {
		if typeURL == typeA {
			return errors.New("no")
		}
		return nil
	}
	c := f.client(t)
	runClient(t, c)
	eventually(t, "nack", func() bool {
		for _, r := range f.cp.received() {
			if r.GetErrorDetail() != nil {
				return true
			}
		}
		return false
	})
	select {
	case <-c.Synced():
		t.Fatal("synced after a NACK")
	default:
	}
	f.store.mu.Lock()
	f.store.reject = nil
	f.store.mu.Unlock()
	mustUpdate(t, f.a, map[string]types.Resource{"x": res("2")})
	waitSynced(t, c)
}

func TestRunRejectsIncompleteConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no conn", Config{Handler: newStore(), TypeURLs: []string{typeA}}},
		{"no handler", Config{Conn: dialNowhere(t), TypeURLs: []string{typeA}}},
		{"no types", Config{Conn: dialNowhere(t), Handler: newStore()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := New(tc.cfg).Run(context.Background()); err == nil {
				t.Fatal("Run accepted an incomplete config")
			}
		})
	}
}
