package xds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

// TestTokenReadOnEachConnect: the bearer token is re-read for every stream, the
// cluster id is sent, and after a failed stream the client reconnects and receives
// the full state by name (routes, endpoints, secrets) as well as by wildcard.
func TestTokenReadOnEachConnect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var auths, clusters []string
	intercept := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		mu.Lock()
		auths = append(auths, md.Get("authorization")...)
		clusters = append(clusters, md.Get("clusterid")...)
		first := len(auths) == 1
		mu.Unlock()
		if first {
			if err := os.WriteFile(tokenFile, []byte("tok2"), 0o600); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "test: drop the first stream")
		}
		return handler(srv, ss)
	}
	snapCache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	node := NodeFor(NodeInfo{PodName: "wp", PodNamespace: "demo", InstanceIP: "10.0.0.2", ServiceAccount: "waypoint", GatewayName: "waypoint"})
	setSnapshot(t, snapCache, node.Id, testState(t))
	gs := grpc.NewServer(grpc.StreamInterceptor(intercept))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, snapCache, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(ln)
	}()
	defer func() {
		gs.Stop()
		wg.Wait()
	}()

	conn, err := Dial(ln.Addr().String(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	applied := make(chan *config.Resources, 64)
	c := New(Config{
		Conn: conn, Node: node, TokenFile: tokenFile, ClusterID: "c1", Backoff: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handler: HandlerFunc(func(res *config.Resources) error {
			if _, err := config.Build(res, nil, config.Options{}); err != nil && !errors.Is(err, config.ErrIncomplete) {
				return err
			}
			select {
			case applied <- res:
			default: // never block the client
			}
			return nil
		}),
	})
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	for complete := false; !complete; {
		select {
		case res := <-applied:
			_, err := config.Build(res, nil, config.Options{})
			complete = err == nil
		case <-deadline:
			t.Fatal("no complete state received")
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) < 2 || auths[0] != "Bearer tok1" || auths[1] != "Bearer tok2" {
		t.Errorf("authorization per stream = %q, want Bearer tok1 then Bearer tok2", auths)
	}
	for _, c := range clusters {
		if c != "c1" {
			t.Errorf("clusterid = %q, want c1", c)
		}
	}
}

func testState(t *testing.T) *config.Resources {
	t.Helper()
	ca, err := envoytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "waypoint"})
	if err != nil {
		t.Fatal(err)
	}
	return envoytest.Resources("cluster.local", leaf.CertPEM, leaf.KeyPEM, ca.PEM, envoytest.Service{
		FQDN: "reviews.demo.svc.cluster.local", VIP: "10.96.0.10", Port: 9080,
		Backends: []envoytest.Backend{{Endpoints: []envoytest.Endpoint{{Destination: "10.0.0.5:9080", Address: "10.0.0.5:15008"}}}},
	})
}

func setSnapshot(t *testing.T, c cachev3.SnapshotCache, node string, res *config.Resources) {
	t.Helper()
	snap, err := envoytest.Snapshot("1", res)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}
