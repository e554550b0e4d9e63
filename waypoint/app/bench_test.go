package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// payload is the 1 KiB body of make bench's latency runs (fortio, 1 KiB payload);
// backends answer /payload with it.
var payload = bytes.Repeat([]byte("x"), 1024)

// BenchmarkRequest measures one request through the waypoint (client HBONE →
// waypoint → HBONE → backend) as make bench's l7 mode sends them: HTTP/1.1 on a
// kept-alive connection, a 1 KiB response body, and for POST a 1 KiB request body.
func BenchmarkRequest(b *testing.B) {
	e := newEnv(b, testServices(testRoutes())...)
	e.accessLog.mu.Lock()
	e.accessLog.discard = true // still rendered and written, not kept
	e.accessLog.mu.Unlock()
	b.Run("direct", func(b *testing.B) {
		// The same request without the waypoint (client HBONE straight to the backend's
		// HBONE server): what the waypoint adds is the difference.
		c := e.directClient(b, "v1")
		b.ReportAllocs()
		for b.Loop() {
			benchOne(b, c, "http://127.0.0.11:9080", http.MethodPost, payload)
		}
	})
	for _, bc := range []struct {
		name   string
		method string
		body   []byte
	}{
		{"GET", http.MethodGet, nil},
		{"POST", http.MethodPost, payload},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchOne(b, e.client, reviews, bc.method, bc.body)
			}
		})
	}
}

func benchOne(b *testing.B, c *http.Client, base, method string, body []byte) {
	if err := send(c, base, method, body); err != nil {
		b.Fatal(err)
	}
}

// send sends one request for base+"/payload" and checks the 1 KiB answer.
func send(c *http.Client, base, method string, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+"/payload", rd)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(payload)) {
		return fmt.Errorf("%s: status %d, %d bytes, %v", method, resp.StatusCode, n, err)
	}
	return nil
}

// BenchmarkRequestPaced sends POSTs as make bench's latency runs do: 1000 requests/s
// spread uniformly over 4 kept-alive connections (250/s each, no catch-up), b.N in
// all, and reports latency percentiles and the process's CPU per request (client,
// backends and, for "waypoint", the waypoint: subtract "direct" for its share).
// Use -benchtime 5000x or more; ns/op is the pacing, not a cost.
func BenchmarkRequestPaced(b *testing.B) {
	e := newEnv(b, testServices(testRoutes())...)
	e.accessLog.mu.Lock()
	e.accessLog.discard = true
	e.accessLog.mu.Unlock()
	direct := e.directHBONE(b, "v1")
	b.Run("direct", func(b *testing.B) {
		runPaced(b, "http://127.0.0.11:9080", 4, func(ctx context.Context, addr string) (net.Conn, error) {
			return direct.Dial(ctx, hbone.Request{Address: e.backends["v1"].hboneLn.Addr().String(), Authority: addr,
				Identities: []spiffe.Identity{{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "reviews-v1"}}})
		})
	})
	b.Run("waypoint", func(b *testing.B) {
		runPaced(b, reviews, 4, func(ctx context.Context, addr string) (net.Conn, error) {
			return e.hbone.Dial(ctx, hbone.Request{
				Address: e.addrs["hbone"].String(), Authority: vipFor(addr), Identities: []spiffe.Identity{waypointID},
				Header: http.Header{"Baggage": {"k8s.namespace.name=demo,k8s.deployment.name=sleep"}},
			})
		})
	})
}

// runPaced runs b.N paced POSTs over conns connections opened with dial.
func runPaced(b *testing.B, base string, conns int, dial func(ctx context.Context, addr string) (net.Conn, error)) {
	clients := make([]*http.Client, conns)
	for i := range clients {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }}
		b.Cleanup(tr.CloseIdleConnections)
		clients[i] = &http.Client{Transport: tr, Timeout: 20 * time.Second}
		if err := send(clients[i], base, http.MethodPost, payload); err != nil { // connect before timing
			b.Fatal(err)
		}
	}
	interval := time.Duration(conns) * time.Millisecond // 1000 requests/s in all
	per := (b.N + conns - 1) / conns
	lat := make([][]time.Duration, conns)
	errs := make(chan error, conns)
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(time.Duration(i) * time.Millisecond) // staggered: uniform overall
			<-t.C
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for range per {
				start := time.Now()
				if err := send(c, base, http.MethodPost, payload); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(start))
				<-tick.C
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.90), "p90-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/op")
}

// directHBONE is an HBONE client with the waypoint's identity (which the backends
// admit), to reach backends bypassing the waypoint.
func (e *env) directHBONE(t testing.TB, name string) *hbone.Client {
	t.Helper()
	leaf := mustIssue(t, e.ca, waypointID)
	hc := hbone.NewClient(hbone.ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return leaf.TLS, nil },
		Roots:                func() *x509.CertPool { return e.ca.Pool },
		TrustDomain:          "cluster.local",
	})
	t.Cleanup(func() { hc.Close() })
	return hc
}

// directClient reaches backend name's pods through HBONE, bypassing the waypoint.
func (e *env) directClient(t testing.TB, name string) *http.Client {
	t.Helper()
	hc := e.directHBONE(t, name)
	bk := e.backends[name]
	server := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "reviews-" + name}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return hc.Dial(ctx, hbone.Request{Address: bk.hboneLn.Addr().String(), Authority: addr, Identities: []spiffe.Identity{server}})
		},
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}
