// Package metrics exports ztunnel's per-connection TCP metrics in Prometheus format with
// Istio's metric names and labels (istio_tcp_connections_opened_total, ..._closed_total,
// ..._failed_total (response_flags DENY on policy denials),
// istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total), so Istio dashboards and
// tools read them unchanged (F-L4-7).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// Reporter values, as Istio sets the "reporter" label.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// connection_security_policy values, as Istio sets them.
const (
	SecurityMutualTLS = "mutual_tls"
	SecurityNone      = "none"
)

// ResponseFlagDeny is Istio's response_flags value for a connection denied by
// authorization policy, at connect time or later when a policy change closes it.
const ResponseFlagDeny = "DENY"

// unknown is Istio's value for a label that cannot be known (e.g. an out-of-mesh peer).
const unknown = "unknown"

// Peer is one side of a connection as it appears in labels.
type Peer struct {
	Workload, Namespace, Principal, Canonical, Revision, Cluster string
}

// PeerOf describes a workload (nil when outside the mesh) and its identity.
func PeerOf(w *state.Workload, id spiffe.Identity) Peer {
	p := Peer{Workload: unknown, Namespace: unknown, Principal: unknown, Canonical: unknown, Revision: unknown, Cluster: unknown}
	if !id.IsZero() {
		p.Principal = id.String()
	}
	if w == nil {
		return p
	}
	p.Workload = orUnknown(w.WorkloadName)
	p.Namespace = orUnknown(w.Namespace)
	p.Canonical = orUnknown(w.CanonicalName)
	p.Revision = orUnknown(w.CanonicalRevision)
	p.Cluster = orUnknown(w.ClusterId)
	if id.IsZero() && w.HBONE() {
		// An enrolled peer's identity is known from WDS even when no TLS carried it.
		p.Principal = w.Identity().String()
	}
	return p
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// Connection is the label set of one TCP connection.
type Connection struct {
	Reporter    string
	Source      Peer
	Destination Peer
	Service     string // destination service hostname, "" when not via a service
	Security    string
	// ResponseFlags is Istio's response_flags label; "" means none ("-").
	ResponseFlags string
}

var labelNames = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_canonical_service",
	"source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"destination_service", "request_protocol", "response_flags", "connection_security_policy",
}

func (c Connection) values() []string {
	svc := c.Service
	if svc == "" {
		svc = unknown
	}
	flags := c.ResponseFlags
	if flags == "" {
		flags = "-"
	}
	return []string{
		c.Reporter,
		c.Source.Workload, c.Source.Namespace, c.Source.Principal, c.Source.Canonical, c.Source.Revision, c.Source.Cluster,
		c.Destination.Workload, c.Destination.Namespace, c.Destination.Principal, c.Destination.Canonical,
		c.Destination.Revision, c.Destination.Cluster,
		svc, "tcp", flags, c.Security,
	}
}

// Metrics holds the counters; register them with a prometheus.Registerer.
type Metrics struct {
	opened, closed, failed, sent, received *prometheus.CounterVec
}

// New creates the counters and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	mk := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labelNames)
		reg.MustRegister(c)
		return c
	}
	return &Metrics{
		opened:   mk("istio_tcp_connections_opened_total", "TCP connections opened."),
		closed:   mk("istio_tcp_connections_closed_total", "TCP connections closed."),
		failed:   mk("istio_tcp_connections_failed_total", "TCP connections that failed or were denied."),
		sent:     mk("istio_tcp_sent_bytes_total", "Bytes sent towards the client (response direction)."),
		received: mk("istio_tcp_received_bytes_total", "Bytes received from the client (request direction)."),
	}
}

// Opened counts a new connection.
func (m *Metrics) Opened(c Connection) { m.opened.WithLabelValues(c.values()...).Inc() }

// Closed counts a finished connection with its request bytes (client to server) and
// response bytes (server to client).
func (m *Metrics) Closed(c Connection, requestBytes, responseBytes int64) {
	v := c.values()
	m.closed.WithLabelValues(v...).Inc()
	m.received.WithLabelValues(v...).Add(float64(requestBytes))
	m.sent.WithLabelValues(v...).Add(float64(responseBytes))
}

// Denied counts a connection refused or closed by authorization policy, as Istio's
// ztunnel records it: closed and failed with response_flags DENY and the bytes carried
// (zero when refused at connect time). Count its Opened first.
func (m *Metrics) Denied(c Connection, requestBytes, responseBytes int64) {
	c.ResponseFlags = ResponseFlagDeny
	m.Closed(c, requestBytes, responseBytes)
	m.failed.WithLabelValues(c.values()...).Inc()
}
