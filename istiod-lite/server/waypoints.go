package server

import (
	"time"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/istiod-lite/xds"
	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// waypointRefresh is how often waypoint snapshots are regenerated so that certificates
// past half their life are re-minted.
const waypointRefresh = time.Minute

// newWaypoints builds the waypoint xDS server: streams authenticate with
// service-account tokens (the tokens file, then authns such as TokenReview) and
// waypoint certificates come from the mesh CA.
func newWaypoints(cfg Config, authority *ca.Authority, tokens *caserver.Tokens, authns []caserver.Authenticator) *xds.Waypoints {
	all := append([]caserver.Authenticator{caserver.TokenAuthenticator{Tokens: tokens, TrustDomain: authority.TrustDomain()}}, authns...)
	return xds.NewWaypoints(all, &xds.CASecrets{Authority: authority}, cfg.Logger)
}

// applyWaypoints builds the waypoints' L7 configuration from s and serves it. A
// snapshot without Gateways costs nothing unless the previous one had some.
func (p *plane) applyWaypoints(s *kubefile.Snapshot) l7.Result {
	if len(s.Gateways) == 0 && !p.hadGateways {
		return l7.Result{}
	}
	p.hadGateways = len(s.Gateways) > 0
	res := l7.Build(l7.Inputs{
		Namespaces: s.Namespaces, Services: s.Services, Pods: s.Pods,
		Gateways: s.Gateways, HTTPRoutes: s.HTTPRoutes, VirtualServices: s.VirtualServices,
		DestinationRules: s.DestinationRules, AuthorizationPolicies: s.AuthorizationPolicies,
		DomainSuffix: p.opts.DomainSuffix, TrustDomain: p.authority.TrustDomain(),
	})
	p.waypoints.Update(res.Waypoints)
	if p.onL7 != nil {
		p.onL7(res)
	}
	return res
}
