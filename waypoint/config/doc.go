// Package config turns the waypoint's Envoy xDS resources (listeners, route
// configurations, clusters, cluster load assignments and secrets, in go-control-plane's
// v3 types) into one immutable runtime Config for the proxy.
//
// It accepts exactly the shape istiod-lite generates (docs: notes/issue5.md section 2):
// the fixed resources (listeners connect_terminate and connect_originate, clusters
// main_internal and connect_originate) must equal, field for field, what the shared
// builders of pkg/waypointxds return (the generator emits the same builders' output),
// and the variable ones (the main_internal filter chains, outbound clusters, endpoints,
// secrets, routes and HTTP filters) are checked against per-message allow-lists with
// protoreflect, so a field the engine does not implement is rejected with an error that
// names the resource and the field, never ignored (as the issue requires of the Go
// engine: NACK rather than silently diverge from Envoy).
package config
