package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

func TestEndToEnd(t *testing.T) {
	e := newEnv(t, testServices(testRoutes())...)

	t.Run("default route", func(t *testing.T) {
		code, body, be := e.do(t, http.MethodGet, reviews+"/", nil)
		if code != http.StatusOK || be != "v1" || body != "v1 GET /" {
			t.Fatalf("got %d %q from %q", code, body, be)
		}
	})
	t.Run("header routing", func(t *testing.T) {
		for range 20 {
			if _, _, be := e.do(t, http.MethodGet, reviews+"/", http.Header{"X-Version": {"v2"}}); be != "v2" {
				t.Fatalf("x-version v2 went to %q", be)
			}
			if _, _, be := e.do(t, http.MethodGet, reviews+"/", nil); be != "v1" {
				t.Fatalf("no header went to %q", be)
			}
		}
	})
	t.Run("weighted split", func(t *testing.T) {
		n, v2 := 1000, 0
		for range n {
			code, _, be := e.do(t, http.MethodGet, reviews+"/split", nil)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if be == "v2" {
				v2++
			}
		}
		if v2 < 60 || v2 > 140 { // 10% ± 4 points
			t.Fatalf("v2 got %d of %d, want 100±40", v2, n)
		}
	})
	t.Run("abort fault", func(t *testing.T) {
		n, aborted := 1000, 0
		for range n {
			code, body, _ := e.do(t, http.MethodGet, reviews+"/abort", nil)
			if code == http.StatusServiceUnavailable {
				if body != "fault filter abort" {
					t.Fatalf("abort body %q", body)
				}
				aborted++
			}
		}
		if aborted < 440 || aborted > 560 {
			t.Fatalf("aborted %d of %d, want 500±60", aborted, n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		code, body, _ := e.do(t, http.MethodGet, reviews+"/timeout", nil)
		if code != http.StatusGatewayTimeout || body != "upstream request timeout" {
			t.Fatalf("got %d %q", code, body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("timeout took %v", d)
		}
	})
	t.Run("retry", func(t *testing.T) {
		for range 20 {
			if code, _, _ := e.do(t, http.MethodGet, reviews+"/retry", nil); code != http.StatusOK {
				t.Fatalf("retry route got %d", code)
			}
		}
		if got := e.backends["v1"].count("/retry"); got < 30 {
			t.Fatalf("backend saw %d attempts, want retries", got)
		}
	})
	t.Run("mirror", func(t *testing.T) {
		code, _, be := e.do(t, http.MethodGet, reviews+"/mirror", nil)
		if code != http.StatusOK || be != "v1" {
			t.Fatalf("got %d from %q", code, be)
		}
		select {
		case h := <-e.backends["v2"].hosts:
			if h != reviewsFQDN+"-shadow:9080" {
				t.Fatalf("mirror host %q", h)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no mirrored request")
		}
	})
	t.Run("rbac", func(t *testing.T) {
		if code, body, _ := e.do(t, http.MethodPost, reviews+"/admin", nil); code != http.StatusForbidden || body != "RBAC: access denied" {
			t.Fatalf("POST /admin: %d %q", code, body)
		}
		if code, _, _ := e.do(t, http.MethodGet, reviews+"/admin", nil); code != http.StatusOK {
			t.Fatalf("GET /admin: %d", code)
		}
	})
	t.Run("tcp chain", func(t *testing.T) {
		code, body, _ := e.do(t, http.MethodGet, "http://"+dbFQDN+":5432/", nil)
		if code != http.StatusOK || body != "v1 GET /" {
			t.Fatalf("tcp proxy: %d %q", code, body)
		}
	})
	t.Run("tcp chain half-close", func(t *testing.T) {
		c, err := e.hbone.Dial(context.Background(), hbone.Request{Address: e.addrs["hbone"].String(), Authority: "10.96.0.11:5432", Identities: []spiffe.Identity{waypointID}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /half HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.0 200") || !strings.HasSuffix(string(b), "v1 GET /half") {
			t.Fatalf("half-closed exchange: %v %q", err, b)
		}
	})
	t.Run("h2c downstream", func(t *testing.T) {
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			return e.hbone.Dial(ctx, hbone.Request{Address: e.addrs["hbone"].String(), Authority: vipFor(addr), Identities: []spiffe.Identity{waypointID}})
		}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(reviews + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || string(b) != "v1 GET /h2" {
			t.Fatalf("h2c: %s %d %q", resp.Proto, resp.StatusCode, b)
		}
	})
	t.Run("h2 upstream", func(t *testing.T) {
		code, body, h := e.doH(t, http.MethodGet, reviews+"/h2up", nil)
		if code != http.StatusOK || h.Get("X-Proto") != "HTTP/2.0" || body != "v2 GET /h2up" {
			t.Fatalf("h2 upstream: %d %q proto %q", code, body, h.Get("X-Proto"))
		}
	})
	t.Run("unknown destination", func(t *testing.T) {
		_, err := e.hbone.Dial(context.Background(), hbone.Request{Address: e.addrs["hbone"].String(), Authority: "10.96.0.99:80", Identities: []spiffe.Identity{waypointID}})
		var se *hbone.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
			t.Fatalf("dial unknown VIP: %v, want 503", err)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		code, _, h := e.doH(t, http.MethodGet, ratings+"/redirect", nil)
		if code != http.StatusMovedPermanently || h.Get("Location") != "http://example.com/new" {
			t.Fatalf("redirect: %d Location %q", code, h.Get("Location"))
		}
	})
	t.Run("no healthy upstream", func(t *testing.T) {
		if code, body, _ := e.do(t, http.MethodGet, ratings+"/empty", nil); code != http.StatusServiceUnavailable || body != "no healthy upstream" {
			t.Fatalf("empty cluster: %d %q", code, body)
		}
	})
	t.Run("outlier ejection", func(t *testing.T) {
		failures := 0
		for range 20 {
			if code, _, _ := e.do(t, http.MethodGet, ratings+"/fail-v2", nil); code != http.StatusOK {
				failures++
			}
		}
		if failures != 3 {
			t.Errorf("%d failures before ejection, want 3 (consecutive_5xx)", failures)
		}
		for range 10 {
			if code, _, be := e.do(t, http.MethodGet, ratings+"/fail-v2", nil); code != http.StatusOK || be != "v1" {
				t.Fatalf("after ejection: %d from %q", code, be)
			}
		}
	})
	t.Run("circuit breaker max_requests", func(t *testing.T) {
		held := e.goGet(ratings + "/hold")
		waitFor(t, 10*time.Second, "held request at the backend", func() bool { return e.backends["v1"].count("/hold") == 1 })
		code, _, h := e.doH(t, http.MethodGet, ratings+"/hold", nil)
		close(e.backends["v1"].hold("/hold"))
		if code != http.StatusServiceUnavailable || h.Get("X-Envoy-Overloaded") != "true" {
			t.Errorf("second request: %d overloaded=%q, want 503 true", code, h.Get("X-Envoy-Overloaded"))
		}
		if got := <-held; got != http.StatusOK {
			t.Errorf("held request: %d", got)
		}
	})
	t.Run("circuit breaker connections and pending", func(t *testing.T) {
		active := e.goGet(ratings + "/hold-pool")
		waitFor(t, 10*time.Second, "held request at the backend", func() bool { return e.backends["v1"].count("/hold-pool") == 1 })
		// Of two more requests, one waits as pending and the other overflows.
		a, b := e.goGet(ratings+"/hold-pool"), e.goGet(ratings+"/hold-pool")
		var first, second int
		select {
		case first = <-a:
			b, a = a, b
		case first = <-b:
		case <-time.After(10 * time.Second):
			t.Fatal("no request overflowed")
		}
		if first != http.StatusServiceUnavailable {
			t.Errorf("first finished request: %d, want 503 overflow", first)
		}
		close(e.backends["v1"].hold("/hold-pool"))
		second = <-a
		if got := <-active; got != http.StatusOK || second != http.StatusOK {
			t.Errorf("active %d, pending %d, want 200 both", got, second)
		}
		_ = b
	})
	t.Run("access log", func(t *testing.T) {
		// The access log is buffered (flushed every AccessLogFlushInterval).
		var entry map[string]any
		waitFor(t, 10*time.Second, "access log entry for POST /admin", func() bool {
			entry = findLogEntry(t, e.accessLog.String(), "POST", "/admin")
			return entry != nil
		})
		if entry["response_code"] != float64(403) || entry["downstream_peer"] != "spiffe://cluster.local/ns/demo/sa/sleep" {
			t.Errorf("POST /admin entry: %v", entry)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		b := e.get(t, "metrics", "/metrics")
		for _, want := range []string{
			`istio_requests_total{connection_security_policy="mutual_tls",destination_service="reviews.demo.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="demo",destination_workload="unknown",reporter="waypoint",request_protocol="http",response_code="403",source_principal="spiffe://cluster.local/ns/demo/sa/sleep",source_workload="sleep",source_workload_namespace="demo"} 1`,
			`istio_request_duration_milliseconds_bucket{`,
		} {
			if !strings.Contains(b, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	t.Run("config dump", func(t *testing.T) {
		b := e.get(t, "admin", "/config_dump")
		if !strings.Contains(b, "inbound-vip|9080|http|"+reviewsFQDN) || strings.Contains(b, "PRIVATE KEY") {
			t.Fatalf("config dump: %.300s", b)
		}
	})
	t.Run("nack keeps config", func(t *testing.T) {
		bad := testRoutes()
		bad[len(bad)-1] = proto.Clone(bad[len(bad)-1]).(*routev3.Route)
		bad[len(bad)-1].GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
		e.push(t, e.resources(testServices(bad)...))
		select {
		case msg := <-e.nacks:
			if !strings.Contains(msg, "hash_policy") {
				t.Fatalf("NACK message %q does not name hash_policy", msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no NACK")
		}
		if code, _, be := e.do(t, http.MethodGet, reviews+"/", nil); code != http.StatusOK || be != "v1" {
			t.Fatalf("after NACK: %d from %q", code, be)
		}
	})
	t.Run("update applies", func(t *testing.T) {
		routes := testRoutes()
		routes[len(routes)-1] = &routev3.Route{Name: "default", Match: prefix("/"), Action: &routev3.Route_Route{Route: toCluster(clusterV2)}}
		e.push(t, e.resources(testServices(routes)...))
		waitFor(t, 10*time.Second, "new default route", func() bool {
			_, _, be := e.do(t, http.MethodGet, reviews+"/", nil)
			return be == "v2"
		})
	})
	t.Run("service removed", func(t *testing.T) {
		svcs := testServices(testRoutes())
		e.push(t, e.resources(svcs[:2]...))
		waitFor(t, 10*time.Second, "ratings chain gone", func() bool {
			c, err := e.hbone.Dial(context.Background(), hbone.Request{Address: e.addrs["hbone"].String(), Authority: "10.96.0.12:9080", Identities: []spiffe.Identity{waypointID}})
			if err == nil {
				c.Close()
			}
			var se *hbone.StatusError
			return errors.As(err, &se) && se.Code == http.StatusServiceUnavailable
		})
		if code, _, _ := e.do(t, http.MethodGet, reviews+"/", nil); code != http.StatusOK {
			t.Fatalf("reviews after ratings removal: %d", code)
		}
		e.push(t, e.resources(svcs...))
		waitFor(t, 10*time.Second, "ratings back", func() bool {
			code, _, _ := e.do(t, http.MethodGet, ratings+"/", nil)
			return code == http.StatusOK
		})
	})
}

func TestReadiness(t *testing.T) {
	e := newEnv(t)
	if code := e.ready(t); code != http.StatusServiceUnavailable {
		t.Fatalf("readiness before any config = %d, want 503", code)
	}
	// An incomplete state (no endpoints yet) is accepted but not applied.
	res := e.resources(testServices(testRoutes())...)
	for name := range res.Endpoints {
		delete(res.Endpoints, name)
		break
	}
	e.push(t, res)
	if code := e.ready(t); code != http.StatusServiceUnavailable {
		t.Fatalf("readiness with incomplete config = %d, want 503", code)
	}
	e.push(t, e.resources(testServices(testRoutes())...))
	e.waitReady(t)
	if code, _, _ := e.do(t, http.MethodGet, reviews+"/", nil); code != http.StatusOK {
		t.Fatalf("request after ready: %d", code)
	}
}

func TestQuitQuitQuit(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get("http://" + e.addrs["admin"].String() + "/quitquitquit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /quitquitquit: %d", resp.StatusCode)
	}
	resp, err = http.Post("http://"+e.addrs["admin"].String()+"/quitquitquit", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /quitquitquit: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, 10*time.Second, "HBONE listener closed", func() bool {
		c, err := net.Dial("tcp", e.addrs["hbone"].String())
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

// findLogEntry returns the first access log line of log for method and path, or nil;
// every line must be a JSON object.
func findLogEntry(t *testing.T, log, method, path string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		if entry["path"] == path && entry["method"] == method {
			return entry
		}
	}
	return nil
}
