package xds

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeInfo is what the waypoint knows about itself (downward API environment).
type NodeInfo struct {
	PodName, PodNamespace, InstanceIP, ServiceAccount, GatewayName, ClusterID string
}

// NodeFor builds the xDS node in Istio's router format:
// Id "router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local", Cluster "<gateway>.<ns>", and
// metadata NAMESPACE, SERVICE_ACCOUNT, GATEWAY_NAME, INSTANCE_IPS and CLUSTER_ID, which
// istiod-lite checks against the caller's token (issue5.md section 1).
func NodeFor(n NodeInfo) *corev3.Node {
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE":       structpb.NewStringValue(n.PodNamespace),
		"SERVICE_ACCOUNT": structpb.NewStringValue(n.ServiceAccount),
		"GATEWAY_NAME":    structpb.NewStringValue(n.GatewayName),
		"INSTANCE_IPS":    structpb.NewStringValue(n.InstanceIP),
		"CLUSTER_ID":      structpb.NewStringValue(n.ClusterID),
	}}
	return &corev3.Node{
		Id:       fmt.Sprintf("router~%s~%s.%s~%s.svc.cluster.local", n.InstanceIP, n.PodName, n.PodNamespace, n.PodNamespace),
		Cluster:  n.GatewayName + "." + n.PodNamespace,
		Metadata: md,
	}
}
