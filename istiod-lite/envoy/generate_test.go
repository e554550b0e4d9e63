package envoy

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

func TestDeterministic(t *testing.T) {
	secrets := testSecrets(t)
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			var first []byte
			for i := 0; i < 5; i++ {
				c, err := Generate(sc.w, secrets)
				if err != nil {
					t.Fatal(err)
				}
				b, err := c.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = b
				} else if !bytes.Equal(first, b) {
					t.Fatalf("run %d marshals differently", i)
				}
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	c, err := Generate(subsetScenario(), testSecrets(t))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Snapshot("v1")
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for typ, n := range map[resourcev3.Type]int{
		resourcev3.ListenerType: 3, resourcev3.RouteType: 1, resourcev3.ClusterType: 4,
		resourcev3.EndpointType: 2, resourcev3.SecretType: 2,
	} {
		if got := len(snap.GetResources(typ)); got != n {
			t.Errorf("%s: %d resources, want %d", typ, got, n)
		}
	}
	sc := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	if err := sc.SetSnapshot(context.Background(), "router~10.0.0.1~wp.bookinfo~bookinfo.svc.cluster.local", snap); err != nil {
		t.Fatalf("SetSnapshot: %v", err)
	}
	cfg, err := GenerateConfig(subsetScenario())
	if err != nil {
		t.Fatal(err)
	}
	withSecrets, err := cfg.WithSecrets(testSecrets(t))
	if err != nil || len(withSecrets.Secrets) != 2 || len(cfg.Secrets) != 0 {
		t.Fatalf("WithSecrets: %v (%d secrets; original %d)", err, len(withSecrets.Secrets), len(cfg.Secrets))
	}
}

func TestOutboundCluster(t *testing.T) {
	tests := []struct {
		name  string
		in    l7.Cluster
		check func(t *testing.T, c *clusterv3.Cluster)
	}{
		{"defaults", httpCluster(reviews), func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetType() != clusterv3.Cluster_EDS || c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN ||
				c.GetCircuitBreakers() != nil || c.GetOutlierDetection() != nil || c.GetConnectTimeout().AsDuration() != 10*time.Second {
				t.Errorf("cluster %v", c)
			}
			if h2 := upstreamH2(t, c); h2 {
				t.Error("HTTP/1.1 cluster has h2 options")
			}
		}},
		{"h2 least request", l7.Cluster{Backend: backend(reviews, 9080, ""), Protocol: l7.ProtocolHTTP2, LB: l7.LBLeastRequest},
			func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST || !upstreamH2(t, c) {
					t.Errorf("cluster %v", c)
				}
			}},
		{"partial limits", l7.Cluster{Backend: backend(reviews, 9080, "v1"), Limits: &l7.Limits{MaxPendingRequests: 1}},
			func(t *testing.T, c *clusterv3.Cluster) {
				th := c.GetCircuitBreakers().GetThresholds()
				if len(th) != 1 || th[0].GetMaxPendingRequests().GetValue() != 1 || th[0].GetMaxConnections() != nil || th[0].GetMaxRequests() != nil {
					t.Errorf("thresholds %v", th)
				}
				if c.GetName() != "outbound|9080|v1|"+reviews {
					t.Errorf("name %q", c.GetName())
				}
			}},
		{"outlier", l7.Cluster{Backend: backend(reviews, 9080, ""), Outlier: &l7.Outlier{Consecutive5xx: 2, BaseEjectionTime: time.Minute}},
			func(t *testing.T, c *clusterv3.Cluster) {
				od := c.GetOutlierDetection()
				if od.GetConsecutive_5Xx().GetValue() != 2 || od.GetBaseEjectionTime().AsDuration() != time.Minute || od.GetInterval() != nil {
					t.Errorf("outlier %v", od)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := outboundCluster(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	if _, err := outboundCluster(&l7.Cluster{Backend: backend(reviews, 1, ""), LB: "MAGLEV"}); err == nil {
		t.Error("unknown LB policy accepted")
	}
}

func upstreamH2(t *testing.T, c *clusterv3.Cluster) bool {
	t.Helper()
	opts := &httpv3.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()[waypointxds.HTTPProtocolOptionsKey].UnmarshalTo(opts); err != nil {
		t.Fatal(err)
	}
	return opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

func TestLoadAssignment(t *testing.T) {
	cla := loadAssignment(&l7.Cluster{Backend: backend(reviews, 9080, ""), Endpoints: []l7.Endpoint{
		{IP: ip("10.0.0.2"), Port: 80}, {IP: ip("10.0.0.1"), Port: 80}, {IP: ip("10.0.0.2"), Port: 80},
		{IP: ip("fd00::1"), Port: 80}, {Port: 80}, {IP: ip("10.0.0.3")},
	}})
	var got []string
	for _, ep := range cla.GetEndpoints()[0].GetLbEndpoints() {
		tunnel := ep.GetMetadata().GetFilterMetadata()[waypointxds.TunnelMetadataKey].GetFields()
		got = append(got, ep.GetEndpoint().GetAddress().GetEnvoyInternalAddress().GetEndpointId()+" "+
			tunnel[waypointxds.TunnelDestinationKey].GetStringValue()+" "+tunnel[waypointxds.TunnelAddressKey].GetStringValue())
		if ep.GetEndpoint().GetAddress().GetEnvoyInternalAddress().GetServerListenerName() != waypointxds.ListenerConnectOriginate {
			t.Errorf("endpoint %v not on connect_originate", ep)
		}
	}
	want := []string{"10.0.0.1:80 10.0.0.1:80 10.0.0.1:15008", "10.0.0.2:80 10.0.0.2:80 10.0.0.2:15008", "[fd00::1]:80 [fd00::1]:80 [fd00::1]:15008"}
	if len(got) != len(want) {
		t.Fatalf("endpoints %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("endpoint %d: %q, want %q", i, got[i], want[i])
		}
	}
	if empty := loadAssignment(&l7.Cluster{Backend: backend(reviews, 9080, "")}); len(empty.GetEndpoints()) != 0 {
		t.Errorf("empty cluster has localities: %v", empty)
	}
}

func TestChains(t *testing.T) {
	w := rbacScenario()
	w.Services = append(w.Services, l7.Service{Namespace: testNS, Name: "headless", Hostname: "headless.bookinfo.svc.cluster.local",
		Ports: []l7.Port{{Number: 80, Protocol: l7.ProtocolHTTP}}})
	c, err := GenerateConfig(w)
	if err != nil {
		t.Fatal(err)
	}
	mi := listenerNamed(c, waypointxds.ListenerMainInternal)
	if len(mi.GetFilterChains()) != 1 {
		t.Fatalf("%d chains, want 1 (service without VIP not served)", len(mi.GetFilterChains()))
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := mi.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	want := []string{waypointxds.FilterRBAC, waypointxds.FilterRBAC, waypointxds.FilterFault, waypointxds.FilterRouter}
	if len(names) != len(want) {
		t.Fatalf("filters %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("filter %d: %q, want %q", i, names[i], want[i])
		}
	}
	// A route to a backend the model lacks still gets a cluster (without endpoints).
	w = waypoint([]l7.Route{{Name: "r", Match: prefixAll(), Backends: []l7.WeightedBackend{weighted(reviews2, 1)}}})
	if c, err = GenerateConfig(w); err != nil {
		t.Fatalf("missing cluster: %v", err)
	}
	if clusterNamed(c, "outbound|9080||"+reviews2) == nil {
		t.Error("no cluster synthesized for the unknown backend")
	}
	// Two services on the same VIP and port cannot both be served.
	w = defaultRoutes()
	dup := w.Services[0]
	dup.Name, dup.Hostname = "other", "other.bookinfo.svc.cluster.local"
	dup.VIPs = []netip.Addr{ip("10.96.0.10")}
	w.Services = append(w.Services, dup)
	if _, err := GenerateConfig(w); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("shared VIP:port: %v, want ErrInvalidInput", err)
	}
	if _, err := GenerateConfig(nil); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("nil waypoint: %v", err)
	}
}

func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name string
		f    func(w *l7.Waypoint)
	}{
		{"trust domain", func(w *l7.Waypoint) { w.TrustDomain = "Cluster/Local" }},
		{"hostname", func(w *l7.Waypoint) { w.Services[0].Hostname = "a|b" }},
		{"empty hostname", func(w *l7.Waypoint) { w.Services[0].Hostname = "" }},
		{"port 0", func(w *l7.Waypoint) { w.Services[0].Ports[0].Number = 0 }},
		{"duplicate port", func(w *l7.Waypoint) { w.Services[0].Ports = append(w.Services[0].Ports, w.Services[0].Ports[0]) }},
		{"duplicate cluster", func(w *l7.Waypoint) { w.Clusters = append(w.Clusters, w.Clusters[0]) }},
		{"subset with separator", func(w *l7.Waypoint) { w.Clusters[0].Subset = "v|1" }},
		{"unknown lb", func(w *l7.Waypoint) { w.Clusters[0].LB = "RING_HASH" }},
		{"outlier percent", func(w *l7.Waypoint) { w.Clusters[0].Outlier = &l7.Outlier{MaxEjectionPercent: 101} }},
		{"header value", func(w *l7.Waypoint) {
			w.Services[0].Ports[0].Routes = []l7.Route{{Match: prefixAll(), Backends: []l7.WeightedBackend{weighted(reviews, 1)},
				ResponseHeaders: l7.HeaderMutation{Set: []l7.Header{{Name: "x", Value: "a\r\nb"}}}}}
		}},
		{"redirect host", func(w *l7.Waypoint) {
			w.Services[0].Ports[0].Routes = []l7.Route{{Match: prefixAll(), Redirect: &l7.Redirect{Host: "a\nb"}}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := defaultRoutes()
			tc.f(w)
			if _, err := GenerateConfig(w); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("GenerateConfig = %v, want ErrInvalidInput", err)
			}
		})
	}
}
