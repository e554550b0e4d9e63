// Package outlier implements passive health checking of upstream hosts, the
// subset of Envoy's cluster outlier_detection istiod-lite emits from an Istio
// DestinationRule: consecutive_5xx ejection for base_ejection_time multiplied
// by the number of times the host was ejected, bounded by max_ejection_percent.
package outlier

import (
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by New when the configuration sets a field the
// engine does not implement; the error text names the field. It is
// protoshape.ErrUnsupported, shared by every waypoint package.
var ErrUnsupported = protoshape.ErrUnsupported

// Detector tracks per-host failure streaks and ejections of one cluster.
// Safe for concurrent use. A nil *Detector ejects nothing.
type Detector struct {
	now func() time.Time

	consecutive5xx  uint32
	interval        time.Duration
	baseEjection    time.Duration
	maxEjection     time.Duration
	maxEjectPercent uint32

	mu    sync.Mutex
	hosts map[string]*hostState
	known map[string]bool // the cluster's hosts, from the last Available
}

type hostState struct {
	streak       uint32    // consecutive errors
	multiplier   uint32    // ejection length in base_ejection_time units
	ejections    uint32    // times ejected in total
	ejectedUntil time.Time // zero: not ejected
	healthySince time.Time // start of the current un-ejected period
}

// New builds a Detector from od with clock now (time.Now when nil). A nil od
// returns a nil Detector (outlier detection off). Defaults as Envoy's:
// consecutive_5xx 5, interval 10s, base_ejection_time 30s,
// max_ejection_percent 10.
func New(od *clusterv3.OutlierDetection, now func() time.Time) (*Detector, error) {
	return newDetector(od, now)
}
