package xdsclient

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// referrer is a Handler whose typeA resources (StringValues) name the typeB resources
// it wants, as an Envoy listener names its route configuration.
type referrer struct {
	*store
	mu   sync.Mutex
	refs map[string]string // typeA name -> typeB name it refers to
}

func (r *referrer) Apply(typeURL string, upserts []*discoveryv3.Resource, removed []string) error {
	if err := r.store.Apply(typeURL, upserts, removed); err != nil || typeURL != typeA {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range upserts {
		var v wrapperspb.StringValue // the test caches label it test.A
		if err := proto.Unmarshal(u.GetResource().GetValue(), &v); err != nil {
			return err
		}
		r.refs[u.GetName()] = v.GetValue()
	}
	for _, n := range removed {
		delete(r.refs, n)
	}
	return nil
}

func (r *referrer) names(typeURL string) ([]string, bool) {
	if typeURL != typeB {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Values(r.refs)), true
}

func (r *referrer) forget(typeURL string, names []string) {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	for _, n := range names {
		delete(r.store.state[typeURL], n)
	}
}

// TestByNameFollowsReferences: a by-name type is requested only once something refers
// to a name, only the referred resources arrive, a changed reference subscribes the
// new name and unsubscribes (and forgets) the old, and a new stream reports only the
// versions still subscribed.
func TestByNameFollowsReferences(t *testing.T) {
	f := newFixture(t)
	mustUpdate(t, f.b, map[string]types.Resource{"b1": res("1"), "b2": res("2"), "b3": res("3")})
	r := &referrer{store: f.store, refs: map[string]string{}}
	c := New(Config{
		Conn: dial(t, &f.addr), Node: &corev3.Node{Id: "test-node"}, TypeURLs: []string{typeA, typeB},
		Handler: r, Names: r.names, Forget: r.forget,
		Backoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	stop := runClient(t, c)
	holdsB := func(want ...string) func() bool {
		return func() bool { _, s := f.store.snapshot(); return slices.Equal(s[typeB], want) }
	}
	mustUpdate(t, f.a, map[string]types.Resource{"a1": res("b1")})
	eventually(t, "b1 subscribed and received", holdsB("b1"))
	mustUpdate(t, f.a, map[string]types.Resource{"a1": res("b2")})
	eventually(t, "b2 replacing b1", holdsB("b2"))

	var byName []*discoveryv3.DeltaDiscoveryRequest
	for _, q := range f.cp.received() {
		if q.GetTypeUrl() == typeB && q.GetResponseNonce() == "" {
			byName = append(byName, q)
		}
	}
	if len(byName) != 2 {
		t.Fatalf("typeB subscription requests = %v, want two", byName)
	}
	if first := byName[0]; first.GetNode().GetId() != "test-node" || !slices.Equal(first.GetResourceNamesSubscribe(), []string{"b1"}) {
		t.Errorf("first typeB request = %v, want node and [b1]", first)
	}
	if ch := byName[1]; !slices.Equal(ch.GetResourceNamesSubscribe(), []string{"b2"}) ||
		!slices.Equal(ch.GetResourceNamesUnsubscribe(), []string{"b1"}) || ch.GetNode() != nil {
		t.Errorf("change request = %v, want +[b2] -[b1] without node", ch)
	}

	stop()
	seen := len(f.cp.received())
	runClient(t, c)
	eventually(t, "typeB resubscribed", func() bool {
		for _, q := range f.cp.received()[seen:] {
			if q.GetTypeUrl() == typeB {
				return true
			}
		}
		return false
	})
	for _, q := range f.cp.received()[seen:] {
		if q.GetTypeUrl() != typeB {
			continue
		}
		if !slices.Equal(q.GetResourceNamesSubscribe(), []string{"b2"}) || len(q.GetInitialResourceVersions()) != 1 ||
			q.GetInitialResourceVersions()["b2"] == "" {
			t.Errorf("resubscription = %v, want [b2] with its version only", q)
		}
		break
	}
}
