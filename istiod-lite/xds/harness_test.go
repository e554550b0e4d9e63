package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/xdsclient"
)

// serve runs s on a real gRPC server on 127.0.0.1:0 until the test ends and returns its
// address and a function that stops it early.
func serve(t *testing.T, s *Server) (addr string, stop func()) {
	t.Helper()
	g := grpc.NewServer()
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	var once sync.Once
	stop = func() { once.Do(func() { g.Stop(); <-done }) }
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// dial returns a connection whose dialer follows *addr, so a test can move the server.
func dial(t *testing.T, addr *atomic.Pointer[string]) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///istiod-lite",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond}}),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", *addr.Load())
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// push is one response as the client's handler saw it.
type push struct {
	typeURL string
	upserts []string
	removed []string
}

// ztunnelStore is a Handler like ztunnel's: it decodes Addresses and can refuse some.
type ztunnelStore struct {
	mu        sync.Mutex
	refuse    string // workload name to NACK
	refusals  int
	pushes    []push
	addresses map[string]*workloadapi.Address
	authz     map[string]*security.Authorization // nil until the first Authorization push
}

func (z *ztunnelStore) Apply(typeURL string, upserts []*discoveryv3.Resource, removed []string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	p := push{typeURL: typeURL, removed: slices.Sorted(slices.Values(removed))}
	if typeURL == TypeAuthorization {
		return z.applyAuthz(p, upserts, removed)
	}
	decoded := map[string]*workloadapi.Address{}
	for _, r := range upserts {
		p.upserts = append(p.upserts, r.GetName())
		if typeURL != TypeAddress {
			continue
		}
		a := &workloadapi.Address{}
		if err := r.GetResource().UnmarshalTo(a); err != nil {
			return fmt.Errorf("decode %s: %w", r.GetName(), err)
		}
		if z.refuse != "" && a.GetWorkload().GetName() == z.refuse {
			z.refusals++
			return errors.New("refused " + z.refuse)
		}
		decoded[r.GetName()] = a
	}
	slices.Sort(p.upserts)
	z.pushes = append(z.pushes, p)
	for n, a := range decoded {
		z.addresses[n] = a
	}
	for _, n := range removed {
		delete(z.addresses, n)
	}
	return nil
}

// applyAuthz decodes Authorization resources as ztunnel does; z.mu is held.
func (z *ztunnelStore) applyAuthz(p push, upserts []*discoveryv3.Resource, removed []string) error {
	decoded := map[string]*security.Authorization{}
	for _, r := range upserts {
		a := &security.Authorization{}
		if err := r.GetResource().UnmarshalTo(a); err != nil {
			return fmt.Errorf("decode %s: %w", r.GetName(), err)
		}
		p.upserts = append(p.upserts, r.GetName())
		decoded[r.GetName()] = a
	}
	slices.Sort(p.upserts)
	z.pushes = append(z.pushes, p)
	if z.authz == nil {
		z.authz = map[string]*security.Authorization{}
	}
	for n, a := range decoded {
		z.authz[n] = a
	}
	for _, n := range removed {
		delete(z.authz, n)
	}
	return nil
}

// policies returns a copy of the Authorizations held.
func (z *ztunnelStore) policies() map[string]*security.Authorization {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make(map[string]*security.Authorization, len(z.authz))
	for k, v := range z.authz {
		out[k] = v
	}
	return out
}

func (z *ztunnelStore) state() ([]push, map[string]*workloadapi.Address) {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make(map[string]*workloadapi.Address, len(z.addresses))
	for k, v := range z.addresses {
		out[k] = v
	}
	return slices.Clone(z.pushes), out
}

func (z *ztunnelStore) refused() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.refusals
}

func (z *ztunnelStore) setRefuse(name string) {
	z.mu.Lock()
	z.refuse = name
	z.mu.Unlock()
}

// nextPushes waits until n more pushes than before arrived and returns them.
func (z *ztunnelStore) nextPushes(t *testing.T, before, n int) []push {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pushes, _ := z.state()
		if len(pushes) >= before+n {
			return pushes[before:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d pushes after %d; have %v", n, before, pushes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runClient(t *testing.T, c *xdsclient.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitSynced(t *testing.T, c *xdsclient.Client) {
	t.Helper()
	select {
	case <-c.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("client never synced")
	}
}

// snapshot is an ambient namespace with a service and the given pods (name -> ip).
func snapshot(pods map[string]string, notReady ...string) *kubefile.Snapshot {
	s := &kubefile.Snapshot{
		Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}}},
		Services: []*corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}},
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range pods {
			if !yield(k) {
				return
			}
		}
	}) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "web"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: pods[name]},
		}
		if slices.Contains(notReady, name) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
		}
		s.Pods = append(s.Pods, p)
	}
	return s
}

const (
	uidA   = "Kubernetes//Pod/shop/web-a"
	uidB   = "Kubernetes//Pod/shop/web-b"
	svcWeb = "shop/web.shop.svc.cluster.local"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
