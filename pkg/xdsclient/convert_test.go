package xdsclient

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
)

// TestConvertKeepsEveryField: Envoy-typed nodes and resources cross the lean delta
// messages unchanged, fields delta does not declare included.
func TestConvertKeepsEveryField(t *testing.T) {
	meta, err := structpb.NewStruct(map[string]any{"NAMESPACE": "istio-system", "LABELS": map[string]any{"app": "ztunnel"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := anypb.New(wrapperspb.String("payload"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  proto.Message
		via  proto.Message
		out  proto.Message
	}{
		{"node", &corev3.Node{Id: "ztunnel~10.0.0.1", Cluster: "Kubernetes", Metadata: meta,
			Locality: &corev3.Locality{Region: "r", Zone: "z"}, UserAgentName: "ambit", ClientFeatures: []string{"f"}},
			&delta.Node{}, &corev3.Node{}},
		{"resource", &discoveryv3.Resource{Name: "a", Version: "v1", Resource: payload, Aliases: []string{"b"},
			Ttl: durationpb.New(time.Minute), CacheControl: &discoveryv3.Resource_CacheControl{DoNotCache: true},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": meta}}},
			&delta.Resource{}, &discoveryv3.Resource{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			via, err := convert(tc.msg, tc.via)
			if err != nil {
				t.Fatal(err)
			}
			out, err := convert(via, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(out, tc.msg) {
				t.Fatalf("round trip = %v, want %v", out, tc.msg)
			}
		})
	}
}

func TestConvertNil(t *testing.T) {
	got, err := convert((*corev3.Node)(nil), &delta.Node{})
	if err != nil || got != nil {
		t.Fatalf("convert(nil) = %v, %v; want nil, nil", got, err)
	}
}

// BenchmarkConvertResource measures what the Envoy-typed layer adds per received
// resource (a 1 KiB payload): re-decoding delta's Resource as discoveryv3.Resource.
func BenchmarkConvertResource(b *testing.B) {
	payload, err := anypb.New(wrapperspb.Bytes(make([]byte, 1024)))
	if err != nil {
		b.Fatal(err)
	}
	r := &delta.Resource{Name: "Kubernetes//Pod/default/web-0", Version: "12345", Resource: payload}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := convert(r, &discoveryv3.Resource{}); err != nil {
			b.Fatal(err)
		}
	}
}
