package caserver

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// requestedIdentity decides which identity the certificate is for: the caller's own, or,
// when the request impersonates, the impersonated one if the caller may ask for it.
// Errors are gRPC status errors (InvalidArgument or PermissionDenied).
func (s *Server) requestedIdentity(ctx context.Context, caller *Caller, req *pb.IstioCertificateRequest) (spiffe.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	clusterIDs := md.Get(wire.MetadataClusterID)
	if len(clusterIDs) > 1 || (len(clusterIDs) == 1 && clusterIDs[0] != s.clusterID) {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied,
			"clusterid %q does not match this control plane's cluster %q", clusterIDs, s.clusterID)
	}
	imp, err := impersonated(md, req)
	if err != nil {
		return spiffe.Identity{}, err
	}
	if imp == "" {
		return caller.Identity, nil
	}
	if !slices.Contains(s.trustedNode, caller.Identity) {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied,
			"impersonation denied: %s is not a trusted node account", caller.Identity)
	}
	if caller.Node == "" {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied,
			"impersonation denied: the %s credential of %s names no node", caller.Method, caller.Identity)
	}
	if len(clusterIDs) == 0 {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied,
			"impersonation denied: request has no %q metadata", wire.MetadataClusterID)
	}
	id, err := spiffe.Parse(imp)
	if err != nil {
		return spiffe.Identity{}, status.Errorf(codes.InvalidArgument, "impersonated identity: %v", err)
	}
	var onNode []spiffe.Identity
	if s.cfg.IdentitiesOnNode != nil {
		onNode = s.cfg.IdentitiesOnNode(caller.Node)
	}
	if !slices.Contains(onNode, id) {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied,
			"impersonation denied: no pod with identity %s runs on node %q of %s", id, caller.Node, caller.Identity)
	}
	return id, nil
}

// impersonated returns the impersonated SPIFFE ID, "" when there is none. Istio's
// ztunnel sends it in the request's metadata struct (field "ImpersonatedIdentity");
// it is also accepted as gRPC metadata of that name. Two different values are refused.
func impersonated(md metadata.MD, req *pb.IstioCertificateRequest) (string, error) {
	var fromReq string
	if v, ok := req.GetMetadata().GetFields()[wire.MetadataImpersonatedIdentity]; ok {
		fromReq = v.GetStringValue()
		if fromReq == "" {
			return "", status.Errorf(codes.InvalidArgument, "%s must be a non-empty string", wire.MetadataImpersonatedIdentity)
		}
	}
	fromMD := md.Get(wire.MetadataImpersonatedIdentity) // keys are case-insensitive
	switch {
	case len(fromMD) > 1:
		return "", status.Errorf(codes.InvalidArgument, "several %s values", wire.MetadataImpersonatedIdentity)
	case len(fromMD) == 1 && fromReq != "" && fromMD[0] != fromReq:
		return "", status.Errorf(codes.InvalidArgument, "conflicting %s values", wire.MetadataImpersonatedIdentity)
	case len(fromMD) == 1 && fromMD[0] == "":
		return "", status.Errorf(codes.InvalidArgument, "%s must be non-empty", wire.MetadataImpersonatedIdentity)
	case len(fromMD) == 1:
		return fromMD[0], nil
	}
	return fromReq, nil
}

// normalizeAccounts fills empty trust domains with td; nil means Istio's default
// trusted node account istio-system/ztunnel.
func normalizeAccounts(ids []spiffe.Identity, td string) []spiffe.Identity {
	if ids == nil {
		ids = []spiffe.Identity{{Namespace: wire.DefaultZtunnelNamespace, ServiceAccount: wire.DefaultZtunnelAccount}}
	}
	out := make([]spiffe.Identity, len(ids))
	for i, id := range ids {
		if id.TrustDomain == "" {
			id.TrustDomain = td
		}
		out[i] = id
	}
	return out
}

func (c *Caller) String() string {
	if c.Node == "" {
		return fmt.Sprintf("%s (%s)", c.Identity, c.Method)
	}
	return fmt.Sprintf("%s on node %s (%s)", c.Identity, c.Node, c.Method)
}
