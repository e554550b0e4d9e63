package interop

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"istio.io/istio/pilot/pkg/features"
	istiomodel "istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
)

func init() {
	// Istio reads PILOT_ENABLE_AMBIENT once, into this variable; without it the fake
	// discovery server builds no ambient index and serves an empty WDS. Istio's own xds
	// tests set it the same way, before any server exists.
	features.EnableAmbient = true
	// Istio's control plane logs every informer sync and push, and spurious errors about
	// the fake client's CRDs; silence it so that a failing comparison stays readable,
	// unless AMBIT_ISTIO_LOG is set.
	if os.Getenv("AMBIT_ISTIO_LOG") == "" {
		for _, s := range istiolog.Scopes() {
			s.SetOutputLevel(istiolog.NoneLevel)
		}
	}
}

// istioWDS is what Istio's control plane serves a ztunnel for one set of Kubernetes
// objects, keyed by xDS resource name.
type istioWDS struct {
	addresses      map[string]*workloadapi.Address
	authorizations map[string]*security.Authorization
}

// serveIstioWDS feeds objects (Kubernetes YAML documents separated by "\n---\n") to
// Istio's fake discovery server (istio.io/istio/pilot/test/xds: the real kube registry,
// ambient index and xDS server over a fake clientset) and reads the WDS it serves over
// delta xDS to a ztunnel on node-a: one wildcard subscription per type, the first
// response holding the whole state. The server stops when the test ends.
func serveIstioWDS(t *testing.T, objects string) istioWDS {
	t.Helper()
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{KubernetesObjectString: objects})
	out := istioWDS{
		addresses:      map[string]*workloadapi.Address{},
		authorizations: map[string]*security.Authorization{},
	}
	for _, r := range istioResources(t, s, v3.AddressType) {
		a := &workloadapi.Address{}
		if err := r.GetResource().UnmarshalTo(a); err != nil {
			t.Fatalf("istio address %q: %v", r.GetName(), err)
		}
		out.addresses[r.GetName()] = a
	}
	for _, r := range istioResources(t, s, v3.WorkloadAuthorizationType) {
		a := &security.Authorization{}
		if err := r.GetResource().UnmarshalTo(a); err != nil {
			t.Fatalf("istio authorization %q: %v", r.GetName(), err)
		}
		out.authorizations[r.GetName()] = a
	}
	if len(out.addresses) == 0 {
		t.Fatal("istio served no addresses: is its ambient index enabled?")
	}
	return out
}

// istioResources subscribes to every resource of typeURL as a ztunnel does (node type
// "ztunnel", wildcard delta subscription), ACKs the first response and returns its
// resources. An empty first response is a valid answer: nothing of that type exists.
func istioResources(t *testing.T, s *xds.FakeDiscoveryServer, typeURL string) []*discovery.Resource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return s.BufListener.DialContext(ctx)
		}))
	if err != nil {
		t.Fatalf("dial istio xds: %v", err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("istio delta xds: %v", err)
	}
	node := &core.Node{
		Id:       string(istiomodel.Ztunnel) + "~10.10.0.11~ztunnel-node-a.istio-system~istio-system.svc.cluster.local",
		Metadata: istiomodel.NodeMetadata{NodeName: "node-a", ClusterID: constants.DefaultClusterName}.ToStruct(),
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
		t.Fatalf("istio %s: subscribe: %v", typeURL, err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("istio %s: first response: %v", typeURL, err)
	}
	if resp.GetTypeUrl() != typeURL || len(resp.GetRemovedResources()) > 0 {
		t.Fatalf("istio %s: unexpected first response: type %s, removed %v", typeURL, resp.GetTypeUrl(), resp.GetRemovedResources())
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatalf("istio %s: ack: %v", typeURL, err)
	}
	return resp.GetResources()
}
