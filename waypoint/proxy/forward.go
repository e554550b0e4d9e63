package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/route"
)

const (
	// maxBuffered bounds a request body kept for retries and mirrors.
	maxBuffered = 8 << 20
	// retryBase and retryMax are Envoy's retry back-off (25 ms base, 10x cap, full jitter).
	retryBase = 25 * time.Millisecond
	retryMax  = 250 * time.Millisecond
	// mirrorTimeout bounds a mirrored request when the route has no timeout.
	mirrorTimeout = 15 * time.Second
)

// hopHeaders are connection-specific headers a proxy does not forward (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// outcome classifies one upstream attempt.
type outcome struct {
	status         int // response status; 0 on error
	connectFailure bool
	reset          bool
	perTryTimeout  bool
	err            error
}

// forward sends the request to the route's cluster, with breaker, retries, timeout and
// mirrors, and copies the response back.
func (p *Proxy) forward(w *recorder, r *http.Request, rt *route.Route, cfg *config.Config, ex *exchange) {
	var body []byte
	buffered := rt.Retry != nil || len(rt.Mirrors) > 0
	if buffered {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBuffered+1))
		if err != nil {
			localReply(w, http.StatusBadRequest, "read request body")
			return
		}
		if len(b) > maxBuffered {
			localReply(w, http.StatusRequestEntityTooLarge, "payload too large")
			return
		}
		body = b
	}
	rt.PrepareRequest(r)
	// Attempts and mirrors share r's header map read-only (outgoing copies no
	// header), so the hop-by-hop headers go from it once, here.
	for _, h := range hopHeaders {
		r.Header.Del(h)
	}
	for _, m := range rt.Mirrors {
		if m.Sampled(p.rnd()) {
			p.mirror(r, body, cfg.Clusters[m.Cluster], rt.Timeout)
		}
	}
	ex.upstreamCluster = rt.Pick(p.rnd())
	cl := cfg.Clusters[ex.upstreamCluster]
	if cl == nil {
		ex.flags = "NC"
		localReply(w, http.StatusServiceUnavailable, bodyNoHealthy)
		return
	}
	if !cl.Breaker.TryRequest() {
		ex.flags = "UO"
		localReply(w, http.StatusServiceUnavailable, bodyOverflow, "X-Envoy-Overloaded", "true")
		return
	}
	defer cl.Breaker.DoneRequest()
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	resp, o := p.attempts(ctx, r, body, buffered, rt, cl, ex)
	if resp == nil {
		p.failReply(ctx, w, r, o, ex)
		return
	}
	defer resp.Body.Close()
	rt.PrepareResponse(resp.Header)
	copyResponse(w, resp)
}

// failReply answers a request that got no upstream response.
func (p *Proxy) failReply(ctx context.Context, w http.ResponseWriter, r *http.Request, o outcome, ex *exchange) {
	switch {
	case r.Context().Err() != nil:
		ex.flags = "DC"
		w.WriteHeader(499) // client gone; nothing is sent
	case ctx.Err() != nil || o.perTryTimeout:
		ex.flags = "UT"
		localReply(w, http.StatusGatewayTimeout, bodyTimeout)
	case errors.Is(o.err, errNoHealthyUpstream):
		ex.flags = "UH"
		localReply(w, http.StatusServiceUnavailable, bodyNoHealthy)
	case errors.Is(o.err, errOverflow):
		ex.flags = "UO"
		localReply(w, http.StatusServiceUnavailable, bodyOverflow, "X-Envoy-Overloaded", "true")
	case o.connectFailure:
		ex.flags = "UF"
		localReply(w, http.StatusServiceUnavailable, bodyConnectFailed)
	default:
		ex.flags = "UC"
		localReply(w, http.StatusServiceUnavailable, bodyReset)
	}
}

// errOverflow: a circuit breaker limit (pending requests, retries) was reached.
var errOverflow = errors.New("upstream overflow")

// attempts runs the first try and the retries the policy allows. It returns a response
// (whose body the caller closes) or the last failure.
func (p *Proxy) attempts(ctx context.Context, r *http.Request, body []byte, buffered bool, rt *route.Route, cl *config.Cluster, ex *exchange) (*http.Response, outcome) {
	retries := 0
	if rt.Retry != nil {
		retries = int(rt.Retry.NumRetries)
	}
	var releaseRetry func()
	defer func() {
		if releaseRetry != nil {
			releaseRetry()
		}
	}()
	for attempt := 0; ; attempt++ {
		ep, ok := p.lb.pick(cl, p.rnd)
		if !ok {
			return nil, outcome{err: errNoHealthyUpstream}
		}
		ex.upstreamHost = ep.Destination
		resp, o := p.try(ctx, r, body, buffered, rt, cl, ep)
		if cl.Outlier != nil && !errors.Is(o.err, errOverflow) {
			st := o.status
			if st == 0 {
				st = http.StatusServiceUnavailable
			}
			cl.Outlier.Report(ep.Destination, st, o.connectFailure)
		}
		if attempt >= retries || ctx.Err() != nil || !retriable(rt, o) {
			return resp, o
		}
		rel, ok := cl.Breaker.Retry()
		if !ok {
			if resp != nil {
				return resp, o
			}
			return nil, outcome{err: errOverflow}
		}
		if releaseRetry != nil {
			releaseRetry()
		}
		releaseRetry = rel
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		backoff := min(retryBase<<attempt, retryMax)
		if !sleep(ctx, time.Duration(p.rnd()%uint64(backoff+1))) {
			return nil, o
		}
	}
}

func retriable(rt *route.Route, o outcome) bool {
	if rt.Retry == nil {
		return false
	}
	if o.perTryTimeout {
		return rt.Retry.Retriable(http.StatusGatewayTimeout, false, false)
	}
	return rt.Retry.Retriable(o.status, o.connectFailure, o.reset)
}

// try sends one attempt to ep.
func (p *Proxy) try(ctx context.Context, r *http.Request, body []byte, buffered bool, rt *route.Route, cl *config.Cluster, ep config.Endpoint) (*http.Response, outcome) {
	actx := ctx
	cancel := context.CancelFunc(noop)
	if rt.Retry != nil && rt.Retry.PerTryTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, rt.Retry.PerTryTimeout)
	}
	slot, err := p.acquireConnection(actx, cl)
	if err != nil {
		cancel()
		if errors.Is(err, errOverflow) {
			return nil, outcome{err: err}
		}
		return nil, outcome{err: err, perTryTimeout: actx.Err() != nil && ctx.Err() == nil}
	}
	out := outgoing(actx, r, body, buffered)
	inFlight := p.lb.begin(ep.Destination)
	resp, err := p.up.roundTrip(out, ep.Destination, ep.Address, cl.HTTP2)
	inFlight.Add(-1)
	if err != nil {
		slot.release()
		cancel()
		o := outcome{err: err}
		var ce *connectError
		switch {
		case actx.Err() != nil && ctx.Err() == nil:
			o.perTryTimeout = true
		case errors.As(err, &ce):
			o.connectFailure = true
		default:
			o.reset = true
		}
		return nil, o
	}
	resp.Body = &attemptBody{ReadCloser: resp.Body, cancel: cancel, slot: slot}
	return resp, outcome{status: resp.StatusCode}
}

func noop() {}

// attemptBody ends an attempt when its response body is closed: it releases the
// attempt's context and connection slot, once.
type attemptBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	slot   connSlot
	closed atomic.Bool
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed.CompareAndSwap(false, true) {
		b.cancel()
		b.slot.release()
	}
	return err
}

// outgoing builds the upstream request from the downstream one: a shallow copy with
// its own URL, sharing r's header (which no transport modifies and forward already
// stripped of hop-by-hop headers).
func outgoing(ctx context.Context, r *http.Request, body []byte, buffered bool) *http.Request {
	out := r.WithContext(ctx)
	u := *r.URL
	out.URL = &u
	out.RequestURI = ""
	out.Close = false
	if buffered {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		if len(body) == 0 {
			out.Body = http.NoBody
		}
	} else if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	return out
}

// copyBufs are copyResponse's buffers: small ones for the common small response,
// large ones once a read fills a small one.
var copyBufs = [2]sync.Pool{
	{New: func() any { b := make([]byte, smallCopy); return &b }},
	{New: func() any { b := make([]byte, largeCopy); return &b }},
}

const (
	smallCopy = 4 << 10
	largeCopy = 32 << 10
)

func putCopyBuf(b *[]byte) {
	if len(*b) == largeCopy {
		copyBufs[1].Put(b)
		return
	}
	copyBufs[0].Put(b)
}

// copyResponse writes an upstream response downstream, trailers included. A
// response of unknown length is flushed after each read, so streams stream;
// others are written in as few writes as the downstream buffer allows.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	flusher, canFlush := w.(http.Flusher)
	buf := copyBufs[0].Get().(*[]byte)
	defer func() { putCopyBuf(buf) }()
	for {
		n, err := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return
			}
			if canFlush && resp.ContentLength < 0 {
				flusher.Flush()
			}
			if n == len(*buf) && n < largeCopy {
				putCopyBuf(buf)
				buf = copyBufs[1].Get().(*[]byte)
			}
		}
		if err != nil {
			if err != io.EOF {
				panic(http.ErrAbortHandler) // reset the downstream stream: the body is incomplete
			}
			break
		}
	}
	for k, vs := range resp.Trailer {
		h[k] = vs
	}
}

// mirror sends a copy of r to cl with Host "<host>-shadow", fire and forget.
func (p *Proxy) mirror(r *http.Request, body []byte, cl *config.Cluster, timeout time.Duration) {
	if cl == nil {
		return
	}
	ep, ok := p.lb.pick(cl, p.rnd)
	if !ok {
		return
	}
	if timeout <= 0 {
		timeout = mirrorTimeout
	}
	base, ok := r.Context().Value(serveKey{}).(context.Context)
	if !ok {
		base = context.WithoutCancel(r.Context())
	}
	ctx, cancel := context.WithTimeout(base, timeout)
	out := outgoing(ctx, r, body, true)
	out.Host = shadowHost(r.Host)
	if !p.spawn(func() {
		defer cancel()
		resp, err := p.up.roundTrip(out, ep.Destination, ep.Address, cl.HTTP2)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}) {
		cancel()
	}
}

// shadowHost appends "-shadow" to the host part of an authority (Envoy's mirror host).
func shadowHost(host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil && !strings.Contains(h, ":") {
		return h + "-shadow:" + port
	}
	return host + "-shadow"
}
