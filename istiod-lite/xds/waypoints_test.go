package xds

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// fakeTokens authenticates "Bearer <ns>/<sa>" as that service account.
type fakeTokens struct{}

func (fakeTokens) Authenticate(ctx context.Context) (*caserver.Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return nil, caserver.ErrNoCredentials
	}
	ns, sa, ok := strings.Cut(strings.TrimPrefix(v[0], "Bearer "), "/")
	if !ok {
		return nil, errors.New("bad token")
	}
	return &caserver.Caller{Identity: spiffe.Identity{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: sa}, Method: "token"}, nil
}

func testAuthority(t *testing.T) *ca.Authority {
	t.Helper()
	c, k, err := ca.GenerateRoot("cluster.local", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(c, k, nil, c, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testWaypoint() *l7.Waypoint {
	return &l7.Waypoint{
		Namespace: "shop", Name: "wp", TrustDomain: "cluster.local",
		Services: []l7.Service{{
			Namespace: "shop", Name: "reviews", Hostname: "reviews.shop.svc.cluster.local",
			VIPs:  []netip.Addr{netip.MustParseAddr("10.96.0.10")},
			Ports: []l7.Port{{Number: 9080, Name: "http", TargetPort: 9080, Protocol: l7.ProtocolHTTP}},
		}},
		Clusters: []l7.Cluster{{
			Backend:   l7.Backend{Hostname: "reviews.shop.svc.cluster.local", Port: 9080},
			Protocol:  l7.ProtocolHTTP,
			Endpoints: []l7.Endpoint{{IP: netip.MustParseAddr("10.244.0.10"), Port: 9080}},
		}},
	}
}

// waypointStream opens a delta ADS stream as a waypoint of shop/wp would, with token
// (empty: none) and node metadata naming namespace/serviceAccount, and asks for type.
func waypointStream(t *testing.T, addr, token, namespace, serviceAccount, typeURL string) (*discoveryv3.DeltaDiscoveryResponse, error) {
	t.Helper()
	var a atomic.Pointer[string]
	a.Store(&addr)
	conn := dial(t, &a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	meta, _ := structpb.NewStruct(map[string]any{
		MetaNamespace: namespace, MetaServiceAccount: serviceAccount, MetaGatewayName: "wp",
	})
	node := &corev3.Node{Id: "router~10.244.1.5~wp-0.shop~shop.svc.cluster.local", Cluster: "wp.shop", Metadata: meta}
	req := &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}
	if typeURL == resourcev3.SecretType {
		req.ResourceNamesSubscribe = []string{"default", "ROOTCA"}
	}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	return stream.Recv()
}

func TestWaypointXDS(t *testing.T) {
	w := NewWaypoints([]caserver.Authenticator{fakeTokens{}}, &CASecrets{Authority: testAuthority(t)}, nil)
	w.Update(map[types.NamespacedName]*l7.Waypoint{{Namespace: "shop", Name: "wp"}: testWaypoint()})
	addr, _ := serve(t, New(nil, WithWaypoints(w)))

	t.Run("listeners for the waypoint's own identity", func(t *testing.T) {
		resp, err := waypointStream(t, addr, "shop/wp", "shop", "wp", resourcev3.ListenerType)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range resp.GetResources() {
			names = append(names, r.GetName())
		}
		slices.Sort(names)
		want := []string{"connect_originate", "connect_terminate", "main_internal"}
		if !slices.Equal(names, want) {
			t.Fatalf("listeners = %v, want %v", names, want)
		}
	})
	t.Run("later requests on the stream need not repeat the node", func(t *testing.T) {
		var a atomic.Pointer[string]
		a.Store(&addr)
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer shop/wp"), 10*time.Second)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, &a)).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := structpb.NewStruct(map[string]any{MetaNamespace: "shop", MetaServiceAccount: "wp", MetaGatewayName: "wp"})
		node := &corev3.Node{Id: "router~10.244.1.6~wp-1.shop~shop.svc.cluster.local", Metadata: meta}
		for i, req := range []*discoveryv3.DeltaDiscoveryRequest{
			{Node: node, TypeUrl: resourcev3.ListenerType},
			{TypeUrl: resourcev3.ClusterType},
		} {
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || len(resp.GetResources()) == 0 {
				t.Fatalf("request %d (%s): %v resources, err %v", i, req.TypeUrl, len(resp.GetResources()), err)
			}
		}
	})
	t.Run("secret is a certificate for the token's identity", func(t *testing.T) {
		resp, err := waypointStream(t, addr, "shop/wp", "shop", "wp", resourcev3.SecretType)
		if err != nil {
			t.Fatal(err)
		}
		var got *tlsv3.Secret
		for _, r := range resp.GetResources() {
			if r.GetName() == "default" {
				got = &tlsv3.Secret{}
				if err := r.GetResource().UnmarshalTo(got); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got == nil {
			t.Fatalf("no default secret in %v", resp.GetResources())
		}
		block, _ := pem.Decode(got.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
		if block == nil {
			t.Fatal("certificate chain is not PEM")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		id, err := spiffe.FromCertificate(cert)
		if err != nil || id.String() != "spiffe://cluster.local/ns/shop/sa/wp" {
			t.Fatalf("certificate identity = %v, %v", id, err)
		}
	})
	for _, tc := range []struct {
		name, token, ns, sa string
	}{
		{"no token", "", "shop", "wp"},
		{"token of another service account", "shop/other", "shop", "wp"},
		{"a namespace without that waypoint", "bank/wp", "bank", "wp"},
	} {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			_, err := waypointStream(t, addr, tc.token, tc.ns, tc.sa, resourcev3.ListenerType)
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("err = %v, want PermissionDenied", err)
			}
		})
	}
}
