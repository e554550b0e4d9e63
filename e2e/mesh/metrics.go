package mesh

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricSum parses Prometheus text and sums the counters (or gauges) of family whose
// labels include every pair of match. A family that is absent sums to 0.
func MetricSum(text, family string, match map[string]string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	var sum float64
next:
	for _, mt := range fams[family].GetMetric() {
		l := map[string]string{}
		for _, lp := range mt.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		for k, v := range match {
			if l[k] != v {
				continue next
			}
		}
		sum += mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
	}
	return sum, nil
}

// InboundMTLS sums the destination-reported mTLS connections of the ztunnel serving
// the node namespace at netns.
func InboundMTLS(netns string) (float64, error) {
	text, err := ReadMetrics(netns)
	if err != nil {
		return 0, err
	}
	return MetricSum(text, "istio_tcp_connections_opened_total",
		map[string]string{"reporter": "destination", "connection_security_policy": "mutual_tls"})
}
