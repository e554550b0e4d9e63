package interop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// counterSum parses Prometheus text exposition and returns the sum of the counter
// family name over every series carrying all the labels in match (other labels may take
// any value), with the number of such series. A family that is absent sums to 0.
func counterSum(text, name string, match map[string]string) (sum float64, series int, err error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, 0, fmt.Errorf("parse metrics: %w", err)
	}
	fam, ok := families[name]
	if !ok {
		return 0, 0, nil
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !hasLabels(labels, match) {
			continue
		}
		if m.GetCounter() == nil {
			return 0, 0, fmt.Errorf("parse metrics: %s is not a counter", name)
		}
		sum += m.GetCounter().GetValue()
		series++
	}
	return sum, series, nil
}

func hasLabels(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestCounterSum(t *testing.T) {
	const text = `# HELP istio_tcp_connections_opened_total TCP connections opened.
# TYPE istio_tcp_connections_opened_total counter
istio_tcp_connections_opened_total{reporter="destination",source_principal="spiffe://cluster.local/ns/a/sa/x"} 2
istio_tcp_connections_opened_total{reporter="destination",source_principal="spiffe://cluster.local/ns/b/sa/y"} 5
istio_tcp_connections_opened_total{reporter="source",source_principal="spiffe://cluster.local/ns/a/sa/x"} 7
`
	tests := []struct {
		name       string
		text       string
		family     string
		match      map[string]string
		wantSum    float64
		wantSeries int
		wantErr    bool
	}{
		{name: "one series", text: text, family: "istio_tcp_connections_opened_total",
			match:   map[string]string{"reporter": "destination", "source_principal": "spiffe://cluster.local/ns/a/sa/x"},
			wantSum: 2, wantSeries: 1},
		{name: "several series", text: text, family: "istio_tcp_connections_opened_total",
			match: map[string]string{"reporter": "destination"}, wantSum: 7, wantSeries: 2},
		{name: "no match", text: text, family: "istio_tcp_connections_opened_total",
			match: map[string]string{"reporter": "nobody"}},
		{name: "absent family", text: text, family: "istio_tcp_connections_closed_total"},
		{name: "garbage", text: "istio_tcp{{ 1\n", family: "istio_tcp", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sum, n, err := counterSum(tc.text, tc.family, tc.match)
			if (err != nil) != tc.wantErr {
				t.Fatalf("counterSum error %v, want error %v", err, tc.wantErr)
			}
			if sum != tc.wantSum || n != tc.wantSeries {
				t.Errorf("counterSum = %v over %d series, want %v over %d", sum, n, tc.wantSum, tc.wantSeries)
			}
		})
	}
}
