package proxy

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

func TestSourceOf(t *testing.T) {
	peer := spiffe.Identity{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "sa1"}
	tests := []struct {
		name, baggage, wl, ns string
	}{
		{"no baggage", "", "sa1", "ns1"},
		{"deployment", "k8s.namespace.name=demo,k8s.deployment.name=sleep", "sleep", "demo"},
		{"workload wins", "k8s.deployment.name=d,k8s.workload.name=w", "w", "ns1"},
		{"properties and spaces", " k8s.pod.name = p ;prop=1, junk", "p", "ns1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.baggage != "" {
				h.Set("Baggage", tc.baggage)
			}
			wl, ns := sourceOf(&connInfo{peer: peer, header: h})
			if wl != tc.wl || ns != tc.ns {
				t.Fatalf("sourceOf = %q, %q; want %q, %q", wl, ns, tc.wl, tc.ns)
			}
		})
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews:9080": "reviews-shadow:9080",
		"reviews":      "reviews-shadow",
		"[::1]:80":     "[::1]:80-shadow",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseBaggage(f *testing.F) {
	f.Add("k8s.namespace.name=demo,k8s.deployment.name=sleep")
	f.Add(";;,,==")
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseBaggage(s)
	})
}

func TestRequestID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := requestID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("request id %q: not a fresh UUIDv4", id)
		}
		seen[id] = true
	}
}
