// Package waypointxds is the contract between istiod-lite's waypoint configuration
// generator and the Go waypoint engine (notes/issue5.md section 2): the names of the
// fixed Envoy resources, filters, filter-state keys and tunnel metadata keys, the HBONE
// flow-control windows and connect timeout, and builders of the resources whose shape
// never varies but for the trust domain — the HBONE listeners connect_terminate and
// connect_originate, the internal listener main_internal's frame, the clusters
// main_internal and connect_originate, the common TLS context, the ADS config source,
// the internal upstream transport socket of outbound clusters and the stdout JSON
// access log.
//
// The generator emits what these builders return; the engine accepts a received fixed
// resource only if it equals, field for field, what the same builder returns, so the two
// cannot drift apart. The shape follows Istio's ambient waypoint (Envoy v3 types from
// go-control-plane). Builders return fresh messages on every call; callers may modify
// them.
package waypointxds
