package xdsclient

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzHandle feeds arbitrary decoded responses to the client: it must never panic and
// must answer each with an ACK or NACK that echoes the type and nonce.
func FuzzHandle(f *testing.F) {
	seed, _ := proto.Marshal(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeA, Nonce: "1",
		Resources: []*discoveryv3.Resource{{Name: "a", Version: "v"}}, RemovedResources: []string{"b"}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := &discoveryv3.DeltaDiscoveryResponse{}
		if proto.Unmarshal(data, resp) != nil {
			return
		}
		c := New(Config{TypeURLs: []string{typeA}, Handler: newStore()})
		ack := c.handle(resp)
		if ack.GetTypeUrl() != resp.GetTypeUrl() || ack.GetResponseNonce() != resp.GetNonce() {
			t.Fatalf("ack %v does not answer %v", ack, resp)
		}
		if resp.GetTypeUrl() != typeA && ack.GetErrorDetail() == nil {
			t.Fatalf("response of type %q was ACKed", resp.GetTypeUrl())
		}
	})
}
