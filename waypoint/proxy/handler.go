package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/authz"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/route"
)

// Envoy's local reply bodies and response flags.
const (
	bodyRBACDenied    = "RBAC: access denied"
	bodyFaultAbort    = "fault filter abort"
	bodyTimeout       = "upstream request timeout"
	bodyNoHealthy     = "no healthy upstream"
	bodyOverflow      = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	bodyConnectFailed = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyReset         = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
)

// exchange is one request's bookkeeping for the access log and metrics.
type exchange struct {
	start           time.Time
	info            *connInfo
	chain           *config.Chain
	route           *route.Route
	flags           string
	upstreamHost    string
	upstreamCluster string
}

// requestState is what ServeHTTP allocates per request.
type requestState struct {
	exchange exchange
	rec      recorder
	body     countingBody
}

// forwardedProtoHTTP is the X-Forwarded-Proto value, shared by every request: header
// mutations replace or append to a value slice, never write into it.
var forwardedProtoHTTP = []string{"http"}

// recorder observes the response status and size.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// countingBody counts request body bytes read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// localReply answers from the waypoint itself (Envoy's local reply: text/plain body).
func localReply(w http.ResponseWriter, code int, body string, header ...string) {
	for i := 0; i+1 < len(header); i += 2 {
		w.Header().Set(header[i], header[i+1])
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// ServeHTTP handles one request of an HTTP chain: RBAC, route, fault, then redirect or
// forward; it writes the access log line and records metrics.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// One allocation for the request's bookkeeping, response recorder and body counter.
	st := &requestState{exchange: exchange{start: time.Now()}, rec: recorder{ResponseWriter: w}, body: countingBody{ReadCloser: r.Body}}
	ex, rec, body := &st.exchange, &st.rec, &st.body
	ex.info, _ = r.Context().Value(infoKey{}).(*connInfo)
	r.Body = body
	if r.Header.Get("X-Request-Id") == "" {
		r.Header["X-Request-Id"] = []string{requestID()}
	}
	r.Header["X-Forwarded-Proto"] = forwardedProtoHTTP
	defer func() { p.finish(ex, rec, r, body.n) }()
	cfg := p.cfg.Load()
	if ex.info == nil || cfg == nil {
		localReply(rec, http.StatusServiceUnavailable, "no configuration")
		return
	}
	ex.chain = cfg.Chain(ex.info.dst)
	if ex.chain == nil || ex.chain.HTTP == nil || ex.chain.HTTP.Routes == nil {
		ex.flags = "NR"
		localReply(rec, http.StatusServiceUnavailable, "no filter chain")
		return
	}
	h := ex.chain.HTTP
	areq := &authz.Request{
		Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: r.Header,
		DestinationPort: uint32(ex.info.dst.Port()), PeerPrincipal: ex.info.principal,
	}
	for _, f := range h.RBAC {
		if !f.Allowed(areq) {
			localReply(rec, http.StatusForbidden, bodyRBACDenied)
			return
		}
	}
	rt := h.Routes.Match(r)
	if rt == nil {
		ex.flags = "NR"
		localReply(rec, http.StatusNotFound, "")
		return
	}
	ex.route = rt
	if h.Fault && rt.Fault != nil && p.fault(rec, r, rt, ex) {
		return
	}
	if rt.Redirect != nil {
		code, loc := rt.Redirect.Response(r)
		rec.Header().Set("Location", loc)
		rec.WriteHeader(code)
		return
	}
	p.forward(rec, r, rt, cfg, ex)
}

// fault applies the route's fault policy; true when it answered (abort or cancelled).
func (p *Proxy) fault(w http.ResponseWriter, r *http.Request, rt *route.Route, ex *exchange) bool {
	d := rt.Fault.Decide(p.rnd)
	if d.Delay > 0 {
		ex.flags = "DI"
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if d.AbortStatus > 0 {
		ex.flags = "FI"
		localReply(w, d.AbortStatus, bodyFaultAbort)
		return true
	}
	return false
}

// finish writes the access log line and records metrics.
func (p *Proxy) finish(ex *exchange, rec *recorder, r *http.Request, received int64) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	d := time.Since(ex.start)
	flags := ex.flags
	if flags == "" {
		flags = "-"
	}
	var peer, svc string
	var srcWL, srcNS string
	if ex.info != nil {
		peer, srcWL, srcNS = ex.info.principal, ex.info.srcWL, ex.info.srcNS
	}
	if ex.chain != nil {
		svc = ex.chain.Service
		if ex.chain.HTTP != nil && ex.chain.HTTP.Log != nil {
			routeName := ""
			if ex.route != nil {
				routeName = ex.route.Name
			}
			ex.chain.HTTP.Log.Log(&accesslog.Entry{
				Start: ex.start, Method: r.Method, Path: r.URL.RequestURI(), OriginalPath: r.Header.Get("X-Envoy-Original-Path"),
				Protocol: protocolOf(r), Authority: r.Host, UserAgent: r.UserAgent(), RequestID: r.Header.Get("X-Request-Id"),
				ResponseCode: rec.status, ResponseFlags: flags, BytesReceived: received, BytesSent: rec.bytes,
				Duration: d, UpstreamHost: ex.upstreamHost, UpstreamCluster: ex.upstreamCluster,
				PeerPrincipal: peer, RouteName: routeName,
			})
		}
	}
	p.opts.Metrics.record(requestLabels{
		srcWorkload: srcWL, srcNamespace: srcNS, srcPrincipal: peer, dstService: svc,
		code: rec.status, protocol: requestProtocol(r),
	}, d)
}

// requestID returns a random UUIDv4 string (Envoy's x-request-id format), with one
// allocation.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	hex.Encode(s[9:13], b[4:6])
	hex.Encode(s[14:18], b[6:8])
	hex.Encode(s[19:23], b[8:10])
	hex.Encode(s[24:36], b[10:16])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// protocolOf is Envoy's %PROTOCOL%: "HTTP/1.1", "HTTP/1.0" or "HTTP/2".
func protocolOf(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}
