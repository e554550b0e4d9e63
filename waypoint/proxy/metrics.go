package proxy

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Istio's standard HTTP metrics as a waypoint reports them
// (reporter="waypoint"): istio_requests_total and istio_request_duration_milliseconds.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.RWMutex
	series map[requestLabels]*series // children by label set, so a request does no WithLabelValues
}

// series is one label set's children.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

var metricLabels = []string{
	"reporter", "source_workload", "source_workload_namespace", "source_principal",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_workload", "response_code", "request_protocol", "connection_security_policy",
}

// NewMetrics registers the metrics with reg. Registration errors (a duplicate) wrap
// prometheus's error.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		series: map[requestLabels]*series{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total", Help: "Requests handled by the waypoint (Istio standard metric).",
		}, metricLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request durations in milliseconds (Istio standard metric).",
			Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000},
		}, metricLabels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// requestLabels are one request's metric labels.
type requestLabels struct {
	srcWorkload, srcNamespace, srcPrincipal string
	dstService                              string // FQDN
	code                                    int
	protocol                                string
}

func (m *Metrics) record(l requestLabels, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.RLock()
	s := m.series[l]
	m.mu.RUnlock()
	if s == nil {
		s = m.add(l)
	}
	s.requests.Inc()
	s.duration.Observe(float64(d) / float64(time.Millisecond))
}

// add resolves and caches the children of a new label set. The cache grows with
// the label sets seen, as the vectors themselves do.
func (m *Metrics) add(l requestLabels) *series {
	name, ns := "unknown", "unknown"
	if parts := strings.SplitN(l.dstService, ".", 3); len(parts) >= 2 {
		name, ns = parts[0], parts[1]
	}
	vals := []string{
		"waypoint", orUnknown(l.srcWorkload), orUnknown(l.srcNamespace), orUnknown(l.srcPrincipal),
		orUnknown(l.dstService), name, ns, "unknown", strconv.Itoa(l.code), l.protocol, "mutual_tls",
	}
	s := &series{requests: m.requests.WithLabelValues(vals...), duration: m.duration.WithLabelValues(vals...)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.series[l]; old != nil {
		return old
	}
	m.series[l] = s
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
