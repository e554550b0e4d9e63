package config

import "github.com/ambitmesh/ambit/pkg/waypointxds"

// The names and fixed resources the engine accepts come from pkg/waypointxds, the
// contract istiod-lite's generator emits; buildFixed compares each received fixed
// resource with that package's builder output (sameShape). These two names stay here
// for the engine's other packages.
const (
	// ConnectTimeout is the connect_timeout of a cluster that sets none
	// (waypointxds.ConnectTimeout, 10 s).
	ConnectTimeout = waypointxds.ConnectTimeout
	// FilterFault is the fault filter's name, also the typed_per_filter_config key of a
	// route's fault (waypointxds.FilterFault).
	FilterFault = waypointxds.FilterFault
)
