package xds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/xdsclient"
)

// TestManySubscribersConvergeUnderChurn drives random model changes into a server with
// several subscribers over real gRPC, one of which joins late (a full comparison) and
// one of which reconnects to a restarted server mid-way (initial versions): every one
// ends holding exactly the served model, and a final one-pod change reaches each as a
// single push of that one resource (the incremental path).
func TestManySubscribersConvergeUnderChurn(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	pods := map[string]string{}
	for i := range 20 {
		pods[fmt.Sprintf("web-%d", i)] = fmt.Sprintf("10.244.0.%d", i+1)
	}
	churn := func() *model.Model {
		for range 1 + r.IntN(3) {
			name := fmt.Sprintf("web-%d", r.IntN(30))
			if _, ok := pods[name]; ok && r.IntN(3) == 0 {
				delete(pods, name)
			} else {
				pods[name] = fmt.Sprintf("10.244.%d.%d", r.IntN(200), r.IntN(200)+1)
			}
		}
		return build(pods)
	}

	srv := New(quiet())
	m := build(pods)
	srv.Update(m)
	addr, stopSrv := serve(t, srv)
	var target atomic.Pointer[string]
	target.Store(&addr)
	var stores []*ztunnelStore
	start := func() {
		z := &ztunnelStore{addresses: map[string]*workloadapi.Address{}}
		c := xdsclient.New(xdsclient.Config{
			Conn: dial(t, &target), Node: &corev3.Node{Id: fmt.Sprintf("ztunnel~%d", len(stores))},
			TypeURLs: []string{TypeAddress, TypeAuthorization}, Handler: z, Backoff: 10 * time.Millisecond, Logger: quiet(),
		})
		runClient(t, c)
		stores = append(stores, z)
	}
	for range 4 {
		start()
	}
	for step := range 120 {
		m = churn()
		srv.Update(m)
		switch step {
		case 40:
			start() // joins late
		case 80:
			// Restart the server with the current model; clients reconnect with versions.
			stopSrv()
			srv = New(quiet())
			srv.Update(m)
			var a string
			a, stopSrv = serve(t, srv)
			target.Store(&a)
		}
	}
	for i, z := range stores {
		waitHolds(t, z, m, fmt.Sprintf("client %d", i))
	}

	before := make([]int, len(stores))
	for i, z := range stores {
		pushes, _ := z.state()
		before[i] = len(pushes)
	}
	pods["web-1"] = "10.9.9.9"
	final := build(pods)
	srv.Update(final)
	uid := model.WorkloadUID("Kubernetes", "shop", "web-1")
	for i, z := range stores {
		got := z.nextPushes(t, before[i], 1)
		if len(got) != 1 || !samePush(got[0], TypeAddress, []string{uid}, nil) {
			t.Errorf("client %d: pushes %+v after a one-pod change, want one with only %s", i, got, uid)
		}
	}
}

// waitHolds polls until z holds exactly m's addresses.
func waitHolds(t *testing.T, z *ztunnelStore, m *model.Model, who string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, held := z.state()
		diff := ""
		if len(held) != m.Addresses.Len() {
			diff = fmt.Sprintf("holds %d addresses, want %d", len(held), m.Addresses.Len())
		}
		for name, a := range m.Addresses.All() {
			if diff == "" && !proto.Equal(held[name], a) {
				diff = "address " + name + " differs"
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", who, diff)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeltaCacheFallsBackWhenBehindTheLog checks the cache directly, with the server's
// own subscription type: a subscriber whose mark predates the change log's floor, or
// that presents a map the cache did not mark, gets the exact difference by a full
// comparison.
func TestDeltaCacheFallsBackWhenBehindTheLog(t *testing.T) {
	c := newDeltaCache(TypeAddress)
	res := func(name, ip string) types.Resource {
		return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Uid: name, Name: ip}}}
	}
	if err := c.UpdateResources(map[string]types.Resource{"a": res("a", "1"), "b": res("b", "1"), "gone": res("gone", "1")}, nil); err != nil {
		t.Fatal(err)
	}
	sub := stream.NewDeltaSubscription(nil, nil, nil, true)
	first := watchOnce(t, c, &sub, "")
	if got := names(first); !slices.Equal(got, []string{"a", "b", "gone"}) {
		t.Fatalf("first response %v", got)
	}
	sub.SetReturnedResources(first.GetReturnedResources())

	// Push the log past its bound with changes to "b" only, then change "a" and remove
	// "gone": the subscriber's mark is now below the floor.
	for i := range maxLog + 10 {
		if err := c.UpdateResources(map[string]types.Resource{"b": res("b", fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.UpdateResources(map[string]types.Resource{"a": res("a", "2")}, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	resp := watchOnce(t, c, &sub, "1")
	out, _ := resp.GetDeltaDiscoveryResponse()
	if got := names(resp); !slices.Equal(got, []string{"a", "b"}) || !slices.Equal(out.GetRemovedResources(), []string{"gone"}) {
		t.Fatalf("after falling behind: upserts %v removed %v, want [a b] and [gone]", got, out.GetRemovedResources())
	}
	sub.SetReturnedResources(resp.GetReturnedResources())

	// Up to date: a new watch stays open (no response) and nothing is left behind.
	ch := make(chan cachev3.DeltaResponse, 1)
	cancel, err := c.CreateDeltaWatch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: TypeAddress, ResponseNonce: "2"}, &sub, ch)
	if err != nil || cancel == nil {
		t.Fatalf("up-to-date watch: cancel %v, err %v", cancel != nil, err)
	}
	if n := c.numWatches(); n != 1 {
		t.Fatalf("%d open watches, want 1", n)
	}
	cancel()
	if n := c.numWatches(); n != 0 {
		t.Fatalf("%d open watches after cancel, want 0", n)
	}

	// A forged mark (another cache's id) is ignored: full comparison, nothing to send
	// but the unknown name's removal.
	forged := map[string]string{revisionKey: "feedface:1", "zzz": "v"}
	for _, r := range c.resources {
		forged[r.Name] = r.Version
	}
	sub2 := stream.NewDeltaSubscription(nil, nil, forged, true)
	resp = watchOnce(t, c, &sub2, "")
	out, _ = resp.GetDeltaDiscoveryResponse()
	if len(out.GetResources()) != 0 || !slices.Equal(out.GetRemovedResources(), []string{"zzz"}) {
		t.Fatalf("forged mark: upserts %v removed %v, want none and [zzz]", names(resp), out.GetRemovedResources())
	}
	if _, ok := forged["a"]; !ok || forged[revisionKey] != "feedface:1" {
		t.Fatal("the cache modified a map it did not produce")
	}
}

func watchOnce(t *testing.T, c *deltaCache, sub *stream.Subscription, nonce string) cachev3.DeltaResponse {
	t.Helper()
	ch := make(chan cachev3.DeltaResponse, 1)
	if _, err := c.CreateDeltaWatch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: TypeAddress, ResponseNonce: nonce}, sub, ch); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("no immediate response")
		return nil
	}
}

func names(r cachev3.DeltaResponse) []string {
	out, err := r.GetDeltaDiscoveryResponse()
	if err != nil {
		return nil
	}
	var n []string
	for _, res := range out.GetResources() {
		n = append(n, res.GetName())
	}
	return n
}
