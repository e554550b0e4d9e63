package measure

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// CounterSum parses Prometheus text exposition (a ztunnel's /metrics) and sums the
// counter name over the series whose labels include every pair of match (nil matches
// all). A missing family sums to 0; text that does not parse is an error.
func CounterSum(text, name string, match map[string]string) (float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	fam := fams[name]
	if fam == nil {
		return 0, nil
	}
	var sum float64
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if ok && m.Counter != nil {
			sum += m.Counter.GetValue()
		}
	}
	return sum, nil
}
