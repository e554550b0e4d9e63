package outlier

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// Envoy's outlier_detection defaults.
const (
	DefaultConsecutive5xx     = 5
	DefaultInterval           = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionPercent = 10
	// DefaultMaxEjectionTime caps one ejection (Envoy's max_ejection_time
	// default, or base_ejection_time when larger).
	DefaultMaxEjectionTime = 300 * time.Second
)

// allowed is the implemented subset of OutlierDetection.
var allowed = &protoshape.AllowList{Fields: protoshape.Fields{
	"envoy.config.cluster.v3.OutlierDetection": {"consecutive_5xx", "interval", "base_ejection_time",
		"max_ejection_percent"},
	"google.protobuf.UInt32Value": {"value"},
	"google.protobuf.Duration":    {"seconds", "nanos"},
}}

func newDetector(od *clusterv3.OutlierDetection, now func() time.Time) (*Detector, error) {
	if od == nil {
		return nil, nil
	}
	if err := allowed.Check(od, ""); err != nil {
		return nil, fmt.Errorf("outlier detection: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	d := &Detector{
		now:             now,
		consecutive5xx:  DefaultConsecutive5xx,
		maxEjectPercent: DefaultMaxEjectionPercent,
		hosts:           make(map[string]*hostState),
	}
	if v := od.GetConsecutive_5Xx(); v != nil {
		d.consecutive5xx = v.GetValue()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		if v.GetValue() > 100 {
			return nil, fmt.Errorf("outlier detection: max_ejection_percent %d above 100", v.GetValue())
		}
		d.maxEjectPercent = v.GetValue()
	}
	var err error
	if d.interval, err = positive(od.GetInterval(), DefaultInterval); err != nil {
		return nil, fmt.Errorf("outlier detection: interval: %w", err)
	}
	if d.baseEjection, err = positive(od.GetBaseEjectionTime(), DefaultBaseEjectionTime); err != nil {
		return nil, fmt.Errorf("outlier detection: base_ejection_time: %w", err)
	}
	d.maxEjection = max(DefaultMaxEjectionTime, d.baseEjection)
	return d, nil
}

func positive(d *durationpb.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	if v := d.AsDuration(); v > 0 {
		return v, nil
	}
	return 0, fmt.Errorf("must be positive")
}

// Report records the outcome of one request to host ("ip:port"): a 5xx
// status or a connect failure extends the host's streak of consecutive
// errors, anything else resets it. A host reaching consecutive_5xx is
// ejected at once (as Envoy's consecutive-5xx detection, which runs inline),
// unless max_ejection_percent of the known hosts are already ejected;
// consecutive_5xx 0 disables ejection. Reports about an ejected host are
// ignored. Safe for concurrent use; a nil Detector ignores reports.
func (d *Detector) Report(host string, status int, connectFailure bool) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	h := d.hosts[host]
	if h == nil {
		h = &hostState{healthySince: now}
		d.hosts[host] = h
	}
	if d.settle(h, now) {
		return // ejected
	}
	if !connectFailure && (status < 500 || status > 599) {
		h.streak = 0
		return
	}
	h.streak++
	if d.consecutive5xx == 0 || h.streak < d.consecutive5xx || !d.mayEject(now) {
		return
	}
	d.eject(h, now)
}

// Available returns the hosts of the given slice that are not ejected, in
// their order. hosts is taken as the cluster's current host set (the base of
// max_ejection_percent); state of hosts no longer in it is forgotten. When
// none would remain it returns hosts itself (panic mode: route to all rather
// than to none). Safe for concurrent use; a nil Detector returns hosts.
func (d *Detector) Available(hosts []string) []string {
	if d == nil || len(hosts) == 0 {
		return hosts
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.track(hosts)
	var out []string
	for _, host := range hosts {
		if h := d.hosts[host]; h != nil && d.settle(h, now) {
			continue
		}
		out = append(out, host)
	}
	if len(out) == 0 {
		return hosts
	}
	return out
}

// Ejected reports whether host is ejected now.
func (d *Detector) Ejected(host string) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[host]
	return h != nil && d.settle(h, d.now())
}

// track records the cluster's host set, forgetting departed hosts.
func (d *Detector) track(hosts []string) {
	if sameSet(d.known, hosts) {
		return
	}
	d.known = make(map[string]bool, len(hosts))
	for _, h := range hosts {
		d.known[h] = true
	}
	for host := range d.hosts {
		if !d.known[host] {
			delete(d.hosts, host)
		}
	}
}

func sameSet(known map[string]bool, hosts []string) bool {
	if known == nil {
		return false
	}
	n := 0
	for _, h := range hosts {
		if !known[h] {
			return false
		}
		n++
	}
	return n >= len(known)
}

// settle brings h's ejection up to date at now and reports whether it is
// still ejected. Once back, the ejection multiplier decays by one for every
// whole interval the host stays un-ejected, as Envoy's interval sweep does.
func (d *Detector) settle(h *hostState, now time.Time) bool {
	if h.ejectedUntil.IsZero() {
		return false
	}
	if now.Before(h.ejectedUntil) {
		return true
	}
	h.healthySince, h.ejectedUntil, h.streak = h.ejectedUntil, time.Time{}, 0
	return false
}

// mayEject applies max_ejection_percent to the host set: ejecting one more
// must keep the ejected share at or below it, as Envoy.
func (d *Detector) mayEject(now time.Time) bool {
	total := len(d.known)
	if total == 0 {
		total = len(d.hosts)
	}
	ejected := 0
	for _, h := range d.hosts {
		if d.settle(h, now) {
			ejected++
		}
	}
	return 100*(ejected+1) <= int(d.maxEjectPercent)*total
}

func (d *Detector) eject(h *hostState, now time.Time) {
	if decay := uint32(now.Sub(h.healthySince) / d.interval); decay >= h.multiplier {
		h.multiplier = 0
	} else {
		h.multiplier -= decay
	}
	if time.Duration(h.multiplier)*d.baseEjection < d.maxEjection {
		h.multiplier++
	}
	h.ejections++
	h.streak = 0
	h.ejectedUntil = now.Add(min(time.Duration(h.multiplier)*d.baseEjection, d.maxEjection))
}
