package xdsclient

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type fixture struct {
	a, b  *cachev3.LinearCache
	cp    *controlPlane
	addr  atomic.Pointer[string]
	store *store
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{a: newCache(typeA), b: newCache(typeB), store: newStore()}
	f.cp = startControlPlane(t, map[string]*cachev3.LinearCache{typeA: f.a, typeB: f.b})
	f.addr.Store(&f.cp.addr)
	return f
}

func (f *fixture) client(t *testing.T) *Client {
	return New(Config{
		Conn:     dial(t, &f.addr),
		Node:     &corev3.Node{Id: "test-node"},
		TypeURLs: []string{typeA, typeB},
		Handler:  f.store,
		Backoff:  10 * time.Millisecond,
		Logger:   slog.New(slog.DiscardHandler),
	})
}

func res(v string) types.Resource { return wrapperspb.String(v) }

func mustUpdate(t *testing.T, c *cachev3.LinearCache, up map[string]types.Resource, del ...string) {
	t.Helper()
	if err := c.UpdateResources(up, del); err != nil {
		t.Fatal(err)
	}
}

func waitSynced(t *testing.T, c *Client) {
	t.Helper()
	select {
	case <-c.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("client never synced")
	}
}

func TestSyncPushesAndRemovals(t *testing.T) {
	f := newFixture(t)
	mustUpdate(t, f.a, map[string]types.Resource{"a1": res("1"), "a2": res("2")})
	c := f.client(t)
	runClient(t, c)
	waitSynced(t, c) // typeB is empty: its empty first response still syncs it

	_, state := f.store.snapshot()
	if want := []string{"a1", "a2"}; !slices.Equal(state[typeA], want) {
		t.Fatalf("typeA state = %v, want %v", state[typeA], want)
	}

	steps := []struct {
		name string
		do   func()
		want call
	}{
		{"update one", func() { mustUpdate(t, f.a, map[string]types.Resource{"a1": res("1b")}) }, call{typeURL: typeA, upserts: []string{"a1"}}},
		{"delete one", func() { mustUpdate(t, f.a, nil, "a2") }, call{typeURL: typeA, removed: []string{"a2"}}},
		{"other type", func() { mustUpdate(t, f.b, map[string]types.Resource{"b1": res("x")}) }, call{typeURL: typeB, upserts: []string{"b1"}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before, _ := f.store.snapshot()
			s.do()
			eventually(t, "push", func() bool { calls, _ := f.store.snapshot(); return len(calls) > len(before) })
			calls, _ := f.store.snapshot()
			got := calls[len(before)]
			if got.typeURL != s.want.typeURL || !slices.Equal(got.upserts, s.want.upserts) || !slices.Equal(got.removed, s.want.removed) {
				t.Fatalf("push = %+v, want %+v", got, s.want)
			}
		})
	}
	reqs := f.cp.received()
	if reqs[0].GetNode().GetId() != "test-node" || !slices.Equal(reqs[0].GetResourceNamesSubscribe(), []string{"*"}) {
		t.Errorf("first request = %v, want node and wildcard subscription", reqs[0])
	}
}

func TestNackKeepsStateAndIsNotAccepted(t *testing.T) {
	f := newFixture(t)
	mustUpdate(t, f.a, map[string]types.Resource{"good": res("1")})
	f.store.reject = func(_ string, up []*discoveryv3.Resource) error {
		for _, r := range up {
			if strings.HasPrefix(r.GetName(), "bad") {
				return errors.New("cannot use " + r.GetName())
			}
		}
		return nil
	}
	c := f.client(t)
	stop := runClient(t, c)
	waitSynced(t, c)

	mustUpdate(t, f.a, map[string]types.Resource{"bad1": res("x"), "good": res("2")})
	eventually(t, "nack", func() bool {
		for _, r := range f.cp.received() {
			if strings.Contains(r.GetErrorDetail().GetMessage(), "cannot use bad1") {
				return true
			}
		}
		return false
	})
	_, state := f.store.snapshot()
	if !slices.Equal(state[typeA], []string{"good"}) {
		t.Fatalf("state after nack = %v, want only the previous good", state[typeA])
	}

	// A fresh stream reports only accepted versions: the server resends what was NACKed
	// (good changed, bad1 new) and nothing for typeB.
	stop()
	f.store.mu.Lock()
	f.store.reject = nil
	f.store.mu.Unlock()
	before, _ := f.store.snapshot()
	runClient(t, c)
	eventually(t, "resync", func() bool { calls, _ := f.store.snapshot(); return len(calls) >= len(before)+2 })
	calls, _ := f.store.snapshot()
	for _, got := range calls[len(before):] {
		want := map[string][]string{typeA: {"bad1", "good"}, typeB: nil}[got.typeURL]
		if !slices.Equal(got.upserts, want) || len(got.removed) != 0 {
			t.Errorf("resync of %s = %+v, want upserts %v", got.typeURL, got, want)
		}
	}
}
