package envoy

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
)

// fuzzBytes draws choices from fuzz input; exhausted input reads as zeros.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) n(max int) int { return int(f.next()) % max }
func (f *fuzzBytes) bit() bool     { return f.next()&1 == 1 }

func (f *fuzzBytes) pick(s ...string) string { return s[f.n(len(s))] }

var fuzzStrings = []string{"", "/", "/a", "/a/", "*", "a*", "*a", "((", "/a?b", ":path", "host", "x-a", "X-B",
	"POST", "v1", "a\x00b", "a\r\nb", "a b", "%REQ(x)%", "request.headers[x-a]", "cluster.local/ns/a/sa/b", "8080", "http"}

func (f *fuzzBytes) str() string { return fuzzStrings[f.n(len(fuzzStrings))] }

func (f *fuzzBytes) strs() []string {
	var out []string
	for i := f.n(3); i > 0; i-- {
		out = append(out, f.str())
	}
	return out
}

func (f *fuzzBytes) backend() l7.Backend {
	return l7.Backend{Hostname: f.pick(reviews, reviews1, ""), Port: []uint32{9080, 80, 0, 70000}[f.n(4)], Subset: f.pick("", "v1", "|")}
}

func (f *fuzzBytes) route() l7.Route {
	kinds := []l7.PathMatchKind{l7.PathAny, l7.PathExact, l7.PathPrefix, l7.PathRaw, l7.PathRegex, "bogus"}
	r := l7.Route{
		Name: f.str(),
		Match: l7.Match{
			Path:    l7.PathMatch{Kind: kinds[f.n(len(kinds))], Value: f.str()},
			Headers: []l7.StringMatch{{Name: f.str(), Value: f.str(), Regex: f.bit(), Invert: f.bit()}}[:f.n(2)],
			Query:   []l7.StringMatch{{Name: f.str(), Value: f.str(), Regex: f.bit()}}[:f.n(2)],
			Method:  f.pick("", "GET", "a\nb"),
		},
		Timeout: time.Duration(f.n(4)-1) * time.Second,
	}
	for i := f.n(3); i > 0; i-- {
		r.Backends = append(r.Backends, l7.WeightedBackend{Backend: f.backend(), Weight: uint32(f.n(3)) * 50})
	}
	if f.n(4) == 0 {
		r.Redirect = &l7.Redirect{Scheme: f.str(), Host: f.str(), Port: uint32(f.n(3)) * 40000, Path: f.str(), PrefixRewrite: f.str(), StatusCode: []int{0, 301, 308, 999}[f.n(4)]}
	}
	if f.bit() {
		r.Rewrite = &l7.Rewrite{Host: f.str(), Path: f.str(), PrefixRewrite: f.str(), PrefixSet: f.bit()}
	}
	r.RequestHeaders = l7.HeaderMutation{Set: []l7.Header{{Name: f.str(), Value: f.str()}}[:f.n(2)], Remove: f.strs()}
	r.ResponseHeaders = l7.HeaderMutation{Add: []l7.Header{{Name: f.str(), Value: f.str()}}[:f.n(2)]}
	if f.bit() {
		r.Mirrors = []l7.Mirror{{Backend: f.backend(), Percent: []float64{0, 0.5, 100, 101, -1}[f.n(5)]}}
	}
	if f.bit() {
		r.Retry = &l7.Retry{Attempts: uint32(f.n(3)), On: f.strs(), StatusCodes: []uint32{503, 42}[: f.n(3)%3 : 2], PerTryTimeout: time.Duration(f.n(3)-1) * time.Second}
	}
	if f.bit() {
		r.Fault = &l7.Fault{DelayPercent: float64(f.n(3)) * 60, Delay: time.Duration(f.n(3)-1) * time.Second, AbortPercent: float64(f.n(3)) * 60, AbortStatus: []uint32{0, 500, 42}[f.n(3)]}
	}
	return r
}

func (f *fuzzBytes) policy() l7.Policy {
	p := l7.Policy{Namespace: f.str(), Name: f.str(), Action: []l7.Action{l7.ActionAllow, l7.ActionDeny, "AUDIT"}[f.n(3)]}
	for i := f.n(3); i > 0; i-- {
		p.Rules = append(p.Rules, l7.Rule{
			From: []l7.Source{{Principals: f.strs(), NotPrincipals: f.strs(), Namespaces: f.strs(), NotNamespaces: f.strs()}}[:f.n(2)],
			To: []l7.Operation{{Hosts: f.strs(), NotHosts: f.strs(), Ports: f.strs(), NotPorts: f.strs(), Methods: f.strs(),
				NotMethods: f.strs(), Paths: f.strs(), NotPaths: f.strs()}}[:f.n(2)],
			When: []l7.Condition{{Key: f.str(), Values: f.strs(), NotValues: f.strs()}}[:f.n(2)],
		})
	}
	return p
}

func fuzzWaypoint(data []byte) *l7.Waypoint {
	f := &fuzzBytes{b: data}
	w := &l7.Waypoint{Namespace: "ns", Name: "wp", TrustDomain: f.pick("", "cluster.local", "a/b")}
	vips := []netip.Addr{ip("10.96.0.10"), ip("10.96.0.11"), ip("fd00::1"), {}}
	for i := f.n(3); i > 0; i-- {
		svc := l7.Service{Namespace: "ns", Name: f.str(), Hostname: f.pick(reviews, reviews1, "", "a b")}
		for j := f.n(3); j > 0; j-- {
			svc.VIPs = append(svc.VIPs, vips[f.n(len(vips))])
		}
		for j := f.n(3); j > 0; j-- {
			port := l7.Port{Number: []uint32{9080, 80, 0, 70000}[f.n(4)], Protocol: []l7.Protocol{l7.ProtocolHTTP, l7.ProtocolHTTP2, l7.ProtocolTCP}[f.n(3)]}
			for k := f.n(3); k > 0; k-- {
				port.Routes = append(port.Routes, f.route())
			}
			svc.Ports = append(svc.Ports, port)
		}
		for j := f.n(2); j > 0; j-- {
			svc.Policies = append(svc.Policies, f.policy())
		}
		w.Services = append(w.Services, svc)
	}
	for i := f.n(3); i > 0; i-- {
		c := l7.Cluster{Backend: f.backend(), Protocol: l7.ProtocolHTTP2, LB: []l7.LBPolicy{"", l7.LBRandom, "X"}[f.n(3)]}
		c.Endpoints = []l7.Endpoint{{IP: vips[f.n(len(vips))], Port: uint32(f.n(3)) * 40000}}
		if f.bit() {
			c.Limits = &l7.Limits{MaxConnections: uint32(f.n(2))}
		}
		if f.bit() {
			c.Outlier = &l7.Outlier{Consecutive5xx: 1, Interval: time.Duration(f.n(3)-1) * time.Second, MaxEjectionPercent: uint32(f.n(3)) * 60}
		}
		w.Clusters = append(w.Clusters, c)
	}
	for i := f.n(2); i > 0; i-- {
		w.Policies = append(w.Policies, f.policy())
	}
	return w
}

// FuzzGenerate: any model either fails with ErrInvalidInput or yields a configuration
// that validates and makes a consistent snapshot; never a panic.
func FuzzGenerate(f *testing.F) {
	for _, seed := range [][]byte{nil, {1, 1, 1, 1, 1, 1, 1, 1}, []byte("routes and policies, the whole lot"),
		{2, 0, 3, 1, 0, 1, 0, 2, 5, 1, 0, 0, 0, 0, 0, 1, 1, 1, 2, 1, 1, 0, 1, 0, 1}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := fuzzWaypoint(data)
		c, err := GenerateConfig(w)
		if err != nil {
			// The generator refuses what it cannot express; it never emits an invalid
			// configuration for an input it accepted.
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error is not ErrInvalidInput: %v", err)
			}
			return
		}
		if err := Validate(c); err != nil {
			t.Fatalf("generated config does not validate: %v", err)
		}
		if _, err := c.Snapshot("1"); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	})
}

// BenchmarkGenerate: 50 services x 2 HTTP ports x 5 routes (each to its own subset
// cluster with one endpoint: 500 clusters, 500 endpoints), with secrets.
func BenchmarkGenerate(b *testing.B) {
	w := &l7.Waypoint{Namespace: "ns", Name: "wp"}
	n := 0
	for s := 0; s < 50; s++ {
		host := fmt.Sprintf("svc-%02d.ns.svc.cluster.local", s)
		svc := l7.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%02d", s), Hostname: host,
			VIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, 0, byte(s + 1)})}}
		for p := uint32(0); p < 2; p++ {
			port := l7.Port{Number: 8080 + p, Name: "http", Protocol: l7.ProtocolHTTP}
			for r := 0; r < 5; r++ {
				be := l7.Backend{Hostname: host, Port: port.Number, Subset: fmt.Sprintf("v%d", r)}
				port.Routes = append(port.Routes, l7.Route{
					Name:     fmt.Sprintf("HTTPRoute/ns/r%d/%d/0", s, r),
					Match:    l7.Match{Path: l7.PathMatch{Kind: l7.PathPrefix, Value: fmt.Sprintf("/p%d", r)}, Headers: []l7.StringMatch{{Name: "x-v", Value: "a"}}},
					Backends: []l7.WeightedBackend{{Backend: be, Weight: 1}},
					Timeout:  time.Second, Retry: &l7.Retry{Attempts: 2, On: []string{"5xx"}},
				})
				n++
				w.Clusters = append(w.Clusters, l7.Cluster{Backend: be, Protocol: l7.ProtocolHTTP,
					Endpoints: []l7.Endpoint{{IP: netip.AddrFrom4([4]byte{10, 244, byte(n / 250), byte(n % 250)}), Port: 8080}}})
			}
			svc.Ports = append(svc.Ports, port)
		}
		svc.Policies = []l7.Policy{{Namespace: "ns", Name: "deny", Action: l7.ActionDeny,
			Rules: []l7.Rule{{To: []l7.Operation{{Methods: []string{"POST"}, Paths: []string{"/admin*"}}}}}}}
		w.Services = append(w.Services, svc)
	}
	secrets := testSecrets(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(w, secrets); err != nil {
			b.Fatal(err)
		}
	}
}
