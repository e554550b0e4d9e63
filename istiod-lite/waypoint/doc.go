// Package waypoint is istiod-lite's waypoint deployment controller (F-WP-1). It keeps
// the GatewayClass "istio-waypoint" in place and, for every Gateway
// (gateway.networking.k8s.io/v1) of that class, server-side-applies a ServiceAccount,
// a Deployment running the waypoint (Ambit's Go engine, or a stock Envoy with a
// generated bootstrap) and a Service, all owned by the Gateway so that Kubernetes'
// garbage collector removes them with it. It reports the Gateway's Accepted and
// Programmed conditions and its addresses, as Istio's gateway deployment controller
// does for waypoints.
//
// The pod contract (flags, environment, labels, mounts) is issue 5's section 1; the
// Envoy bootstrap points a stock Envoy at the same xDS server (see envoy.go).
package waypoint
