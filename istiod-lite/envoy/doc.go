// Package envoy turns a waypoint's L7 model (istiod-lite/l7.Waypoint) into Envoy xDS v3
// resources — listeners, route configurations, clusters, cluster load assignments and
// SDS secrets — in exactly the shape of the issue-5 design contract
// (/work/notes/issue5.md, section 2), and validates them before they are served.
//
// The shape follows Istio's ambient waypoint: HBONE is terminated on the listener
// "connect_terminate" (0.0.0.0:15008, mTLS, HTTP/2 CONNECT), each CONNECT stream is handed
// to the internal listener "main_internal", whose filter chains (one per service VIP and
// port) run an HTTP connection manager with RDS routes, RBAC, fault injection and the
// router, or a TCP proxy; upstream clusters "outbound|<port>|<subset>|<FQDN>" reach their
// endpoints through the internal listener "connect_originate", which opens an HBONE
// CONNECT tunnel to "<podIP>:15008" with the authority "<podIP>:<targetPort>".
//
// The names and the fixed resources of that shape (the HBONE listeners and clusters, the
// TLS context, the access log) come from pkg/waypointxds, which the Go waypoint engine
// checks received resources against.
//
// Generate builds and validates a Config; Validate checks each resource's generated
// protobuf validation (ValidateAll, including messages packed in Any fields) and that
// every name a resource refers to resolves to a resource of the right kind.
package envoy

import "errors"

// ErrInvalidConfig is wrapped by every error Validate (and so Generate) returns for a
// configuration that fails proto validation or holds a dangling reference.
var ErrInvalidConfig = errors.New("invalid envoy configuration")

// ErrInvalidInput is wrapped by Generate's errors for an l7.Waypoint it cannot express
// (a route with neither backends nor redirect, a bad regex, an unknown retry condition).
var ErrInvalidInput = errors.New("invalid waypoint input")

// ErrInvalidSecrets is wrapped by errors for empty or non-PEM secret material.
var ErrInvalidSecrets = errors.New("invalid secrets")
