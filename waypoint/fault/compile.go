package fault

import (
	"fmt"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// allowed is the implemented subset of HTTPFault.
var allowed = &protoshape.AllowList{Fields: protoshape.Fields{
	"envoy.extensions.filters.http.fault.v3.HTTPFault":    {"delay", "abort"},
	"envoy.extensions.filters.common.fault.v3.FaultDelay": {"fixed_delay", "percentage"},
	"envoy.extensions.filters.http.fault.v3.FaultAbort":   {"http_status", "percentage"},
	"envoy.type.v3.FractionalPercent":                     {"numerator", "denominator"},
	"google.protobuf.Duration":                            {"seconds", "nanos"},
}}

func compile(f *faultv3.HTTPFault) (*Policy, error) {
	if f == nil {
		return nil, nil
	}
	if err := allowed.Check(f, ""); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	p := &Policy{}
	if d := f.GetDelay(); d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, fmt.Errorf("fault: delay.fixed_delay is required")
		}
		if err := fd.CheckValid(); err != nil {
			return nil, fmt.Errorf("fault: delay.fixed_delay: %w", err)
		}
		if p.delay = fd.AsDuration(); p.delay <= 0 {
			return nil, fmt.Errorf("fault: delay.fixed_delay must be positive")
		}
		perM, err := perMillion(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("fault: delay.percentage: %w", err)
		}
		p.delayPerM = perM
	}
	if a := f.GetAbort(); a != nil {
		st := a.GetHttpStatus()
		if st < 200 || st >= 600 {
			return nil, fmt.Errorf("fault: abort.http_status %d outside [200, 600)", st)
		}
		perM, err := perMillion(a.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("fault: abort.percentage: %w", err)
		}
		p.abortStatus, p.abortPerM = int(st), perM
	}
	if p.delayPerM == 0 && p.abortPerM == 0 {
		return nil, nil
	}
	return p, nil
}

// perMillion converts an Envoy FractionalPercent to parts per million,
// capped at 100%; an unset percentage is 0, as Envoy's fault filter.
func perMillion(fp *typev3.FractionalPercent) (uint64, error) {
	if fp == nil {
		return 0, nil
	}
	var scale uint64
	switch fp.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		scale = 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		scale = 100
	case typev3.FractionalPercent_MILLION:
		scale = 1
	default:
		return 0, fmt.Errorf("unknown denominator %d", fp.GetDenominator())
	}
	return min(uint64(fp.GetNumerator())*scale, 1_000_000), nil
}
