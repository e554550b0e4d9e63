package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsCache: a label set's children are resolved once, then recording
// allocates nothing, and distinct label sets stay distinct series.
func TestMetricsCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ok := requestLabels{srcWorkload: "sleep", srcNamespace: "demo", dstService: "reviews.demo.svc.cluster.local", code: 200, protocol: "http"}
	denied := ok
	denied.code = 403
	m.record(ok, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { m.record(ok, time.Millisecond) }); n != 0 {
		t.Errorf("record allocates %v times per call", n)
	}
	m.record(denied, time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "istio_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "response_code" {
					counts[l.GetValue()] = s.GetCounter().GetValue()
				}
			}
		}
	}
	if len(counts) != 2 || counts["200"] != 102 || counts["403"] != 1 {
		t.Fatalf("istio_requests_total by response_code = %v, want 200: 102, 403: 1", counts)
	}
}
