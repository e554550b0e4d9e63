package xds

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/xdsclient"
)

// env is one istiod-lite xDS server and one ztunnel-like client over real gRPC.
type env struct {
	srv     *Server
	stopSrv func()
	addr    atomic.Pointer[string]
	store   *ztunnelStore
	client  *xdsclient.Client
	stopRun func()
}

func newEnv(t *testing.T, m *model.Model) *env {
	t.Helper()
	e := &env{srv: New(quiet()), store: &ztunnelStore{addresses: map[string]*workloadapi.Address{}}}
	e.srv.Update(m)
	addr, stop := serve(t, e.srv)
	e.stopSrv = stop
	e.addr.Store(&addr)
	e.client = xdsclient.New(xdsclient.Config{
		Conn:     dial(t, &e.addr),
		Node:     &corev3.Node{Id: "ztunnel~10.0.0.1~ztunnel-x.istio-system~istio-system.svc.cluster.local"},
		TypeURLs: []string{TypeAddress, TypeAuthorization},
		Handler:  e.store,
		Backoff:  10 * time.Millisecond,
		Logger:   quiet(),
	})
	e.stopRun = runClient(t, e.client)
	waitSynced(t, e.client)
	return e
}

func build(pods map[string]string, notReady ...string) *model.Model {
	return model.Build(snapshot(pods, notReady...), model.Options{})
}

func samePush(got push, typeURL string, upserts, removed []string) bool {
	return got.typeURL == typeURL && slices.Equal(got.upserts, upserts) && slices.Equal(got.removed, removed)
}

// TestInitialPushThenOnlyChanges walks F-CP-2: the first push carries the whole model,
// then each update pushes exactly the resources that changed, and removals.
func TestInitialPushThenOnlyChanges(t *testing.T) {
	two := map[string]string{"web-a": "10.244.0.1", "web-b": "10.244.0.2"}
	m0 := build(two)
	e := newEnv(t, m0)

	_, held := e.store.state()
	if len(held) != m0.Addresses.Len() {
		t.Fatalf("initial push holds %d addresses, want %d", len(held), m0.Addresses.Len())
	}
	for name, a := range m0.Addresses.All() {
		if !proto.Equal(held[name], a) {
			t.Errorf("address %s = %v, want %v", name, held[name], a)
		}
	}

	steps := []struct {
		name    string
		m       *model.Model
		upserts []string
		removed []string
	}{
		// An identical rebuild pushes nothing: the next step's push is the only one.
		{"unchanged rebuild", build(two), nil, nil},
		{"one pod not ready", build(two, "web-b"), []string{uidB}, nil},
		{"pod deleted", build(map[string]string{"web-b": "10.244.0.2"}, "web-b"), nil, []string{uidA}},
		{"pod added", build(map[string]string{"web-b": "10.244.0.2", "web-a": "10.244.0.9"}, "web-b"), []string{uidA}, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before, _ := e.store.state()
			e.srv.Update(s.m)
			if s.upserts == nil && s.removed == nil {
				return // checked by the next step seeing exactly one push
			}
			got := e.store.nextPushes(t, len(before), 1)
			if len(got) != 1 || !samePush(got[0], TypeAddress, s.upserts, s.removed) {
				t.Fatalf("pushes = %+v, want one with upserts %v removed %v", got, s.upserts, s.removed)
			}
			_, held := e.store.state()
			for name, a := range s.m.Addresses.All() {
				if !proto.Equal(held[name], a) {
					t.Errorf("after push %s = %v, want %v", name, held[name], a)
				}
			}
			if len(held) != s.m.Addresses.Len() {
				t.Errorf("client holds %d addresses, want %d", len(held), s.m.Addresses.Len())
			}
		})
	}
}

// TestReconnectGetsNoResend: a client that reconnects, to the same server or to a freshly
// started one serving the same model, reports its versions and is sent nothing again.
func TestReconnectGetsNoResend(t *testing.T) {
	m := build(map[string]string{"web-a": "10.244.0.1", "web-b": "10.244.0.2"})
	e := newEnv(t, m)

	// Same server: a new stream from the same client.
	{
		before, _ := e.store.state()
		e.stopRun()
		e.stopRun = runClient(t, e.client)
		for _, p := range e.store.nextPushes(t, len(before), 2) {
			if len(p.upserts)+len(p.removed) != 0 {
				t.Errorf("resent after reconnect: %+v", p)
			}
		}
	}
	// Restarted server: the client reconnects by itself to a new instance.
	{
		before, _ := e.store.state()
		e.stopSrv()
		srv2 := New(quiet())
		srv2.Update(build(map[string]string{"web-a": "10.244.0.1", "web-b": "10.244.0.2"}))
		addr2, _ := serve(t, srv2)
		e.addr.Store(&addr2)
		for _, p := range e.store.nextPushes(t, len(before), 2) {
			if len(p.upserts)+len(p.removed) != 0 {
				t.Errorf("resent after control plane restart: %+v", p)
			}
		}
		// The new server still pushes changes on this stream.
		before, _ = e.store.state()
		srv2.Update(build(map[string]string{"web-a": "10.244.0.1"}))
		got := e.store.nextPushes(t, len(before), 1)
		if !samePush(got[0], TypeAddress, nil, []string{uidB}) {
			t.Errorf("push after restart = %+v, want removal of %s", got[0], uidB)
		}
	}
}

// TestNackKeepsPreviousState: a push the client rejects leaves its state as it was, the
// rejected resources are not counted as held (a reconnect brings them again), and later
// pushes still arrive.
func TestNackKeepsPreviousState(t *testing.T) {
	m0 := build(map[string]string{"web-a": "10.244.0.1"})
	e := newEnv(t, m0)
	e.store.setRefuse("poison")

	before, held0 := e.store.state()
	e.srv.Update(build(map[string]string{"web-a": "10.244.0.1", "poison": "10.244.0.66"}))
	deadline := time.Now().Add(10 * time.Second)
	for e.store.refused() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("push with the refused workload never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A further change arrives on its own: the NACK did not end the stream.
	e.srv.Update(build(map[string]string{"web-a": "10.244.0.1", "poison": "10.244.0.66"}, "web-a"))
	got := e.store.nextPushes(t, len(before), 1)
	if !samePush(got[0], TypeAddress, []string{uidA}, nil) {
		t.Fatalf("push after nack = %+v, want only %s", got[0], uidA)
	}
	_, held := e.store.state()
	if _, ok := held["Kubernetes//Pod/shop/poison"]; ok {
		t.Fatal("refused resource was applied")
	}
	if len(held) != len(held0) {
		t.Fatalf("state size %d after nack, want %d", len(held), len(held0))
	}

	// Reconnect: the refused resource was never accepted, so it comes again.
	e.store.setRefuse("")
	before, _ = e.store.state()
	e.stopRun()
	e.stopRun = runClient(t, e.client)
	var resent []string
	for _, p := range e.store.nextPushes(t, len(before), 2) {
		resent = append(resent, p.upserts...)
	}
	if !slices.Equal(resent, []string{"Kubernetes//Pod/shop/poison"}) {
		t.Fatalf("resent after reconnect = %v, want only the refused resource", resent)
	}
}
