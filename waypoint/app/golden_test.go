package app

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

// TestGeneratorGoldens serves istiod-lite's golden configurations (what the generator
// emits for the e2e scenarios) to the engine and checks the behaviour each
// scenario is about, so generator and engine agree beyond the shape.
func TestGeneratorGoldens(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, e *env)
	}{
		{"01-default-routes.golden.yaml", func(t *testing.T, e *env) {
			if code, _, _ := e.do(t, http.MethodGet, bookinfo+"/", nil); code != http.StatusOK {
				t.Fatalf("default route: %d", code)
			}
			// Port 3306 is TCP: bytes pass through unchanged.
			c, err := e.hbone.Dial(context.Background(), hbone.Request{Address: e.addrs["hbone"].String(), Authority: "10.96.0.10:3306", Identities: []spiffe.Identity{waypointID}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET /tcp HTTP/1.0\r\n\r\n")
			_ = c.CloseWrite()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil || !strings.HasSuffix(string(b), "GET /tcp") {
				t.Fatalf("tcp port: %v %q", err, b)
			}
		}},
		{"02-weighted.golden.yaml", func(t *testing.T, e *env) {
			if v2 := countV2(t, e, 1000); v2 < 60 || v2 > 140 {
				t.Fatalf("v2 got %d of 1000, want 100±40", v2)
			}
		}},
		{"03-header-match.golden.yaml", func(t *testing.T, e *env) {
			for range 10 {
				if _, _, be := e.do(t, http.MethodGet, bookinfo+"/", http.Header{"End-User": {"jason"}}); be != "v2" {
					t.Fatalf("end-user jason went to %q", be)
				}
				if _, _, be := e.do(t, http.MethodGet, bookinfo+"/", nil); be != "v1" {
					t.Fatalf("no header went to %q", be)
				}
			}
		}},
		{"05-timeout.golden.yaml", func(t *testing.T, e *env) {
			start := time.Now()
			if code, body, _ := e.do(t, http.MethodGet, bookinfo+"/timeout", nil); code != http.StatusGatewayTimeout || body != "upstream request timeout" {
				t.Fatalf("slow backend: %d %q", code, body)
			}
			if d := time.Since(start); d < time.Second || d > 4*time.Second {
				t.Fatalf("cut after %v, want about 1s", d)
			}
		}},
		{"06-retries.golden.yaml", func(t *testing.T, e *env) {
			for range 20 {
				if code, _, _ := e.do(t, http.MethodGet, bookinfo+"/retry", nil); code != http.StatusOK {
					t.Fatalf("flaky backend through retries: %d", code)
				}
			}
		}},
		{"07-mirror.golden.yaml", func(t *testing.T, e *env) {
			if code, _, be := e.do(t, http.MethodGet, bookinfo+"/", nil); code != http.StatusOK || be != "v1" {
				t.Fatalf("primary: %d from %q", code, be)
			}
			select {
			case h := <-e.backends["v2"].hosts:
				if h != "reviews.bookinfo.svc.cluster.local-shadow:9080" {
					t.Fatalf("mirror host %q", h)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no mirrored request")
			}
		}},
		{"10-redirect-rewrite-headers.golden.yaml", func(t *testing.T, e *env) {
			code, _, h := e.doH(t, http.MethodGet, bookinfo+"/old/x", nil)
			if code != http.StatusMovedPermanently || !strings.HasPrefix(h.Get("Location"), "https://reviews.example.com") || !strings.HasSuffix(h.Get("Location"), "/new/x") {
				t.Fatalf("redirect: %d %q", code, h.Get("Location"))
			}
			code, body, h := e.doH(t, http.MethodGet, bookinfo+"/api/items", nil)
			if code != http.StatusOK || body != "v1 GET /v1/items" || h.Get("X-Served-By") != "waypoint" {
				t.Fatalf("rewrite: %d %q x-served-by %q", code, body, h.Get("X-Served-By"))
			}
		}},
		{"09-subsets.golden.yaml", func(t *testing.T, e *env) {
			if v2 := countV2(t, e, 200); v2 < 60 || v2 > 140 {
				t.Fatalf("v2 got %d of 200, want 100±40 (50/50 subsets)", v2)
			}
		}},
		{"04-abort-fault.golden.yaml", func(t *testing.T, e *env) {
			aborted := 0
			for range 1000 {
				if code, body, _ := e.do(t, http.MethodGet, bookinfo+"/", nil); code != http.StatusOK {
					if body != "fault filter abort" {
						t.Fatalf("status %d body %q", code, body)
					}
					aborted++
				}
			}
			if aborted < 440 || aborted > 560 {
				t.Fatalf("aborted %d of 1000, want 500±60", aborted)
			}
		}},
		{"08-rbac.golden.yaml", func(t *testing.T, e *env) {
			if code, body, _ := e.do(t, http.MethodPost, bookinfo+"/admin", nil); code != http.StatusForbidden || body != "RBAC: access denied" {
				t.Fatalf("POST /admin: %d %q", code, body)
			}
			// ALLOW only from namespace bookinfo: demo/sleep is denied, bookinfo/productpage passes.
			if code, _, _ := e.do(t, http.MethodGet, bookinfo+"/", nil); code != http.StatusForbidden {
				t.Fatalf("GET / from demo: %d, want 403", code)
			}
			_, inBookinfo := e.newClient(t, spiffe.Identity{TrustDomain: "cluster.local", Namespace: "bookinfo", ServiceAccount: "productpage"})
			resp, err := inBookinfo.Get(bookinfo + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET / from bookinfo: %d, want 200", resp.StatusCode)
			}
		}},
	}
	dir := filepath.Dir(filepath.Join("..", "..", envoytest.GoldenGlob))
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("golden %s not available: %v", tc.file, err)
			}
			res, err := envoytest.ReadGolden(path)
			if err != nil {
				t.Fatalf("read golden: %v", err)
			}
			e := newEnv(t)
			res.Secrets = e.resources().Secrets
			e.push(t, res)
			e.waitReady(t)
			tc.check(t, e)
		})
	}
}

// bookinfo is the reviews service of the generator goldens.
const bookinfo = "http://reviews.bookinfo.svc.cluster.local:9080"

// countV2 sends n GETs to bookinfo "/", each of which must succeed, and counts those
// the v2 backend answered.
func countV2(t *testing.T, e *env, n int) int {
	t.Helper()
	v2 := 0
	for range n {
		code, _, be := e.do(t, http.MethodGet, bookinfo+"/", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if be == "v2" {
			v2++
		}
	}
	return v2
}
