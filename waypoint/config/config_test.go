package config_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/waypointxds"
	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

const fqdn = "reviews.demo.svc.cluster.local"

func testResources(t testing.TB) *config.Resources {
	t.Helper()
	res, err := buildTestResources()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func buildTestResources() (*config.Resources, error) {
	ca, err := envoytest.NewCA()
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(spiffe.Identity{TrustDomain: "cluster.local", Namespace: "demo", ServiceAccount: "waypoint"})
	if err != nil {
		return nil, err
	}
	return envoytest.Resources("cluster.local", leaf.CertPEM, leaf.KeyPEM, ca.PEM,
		envoytest.Service{FQDN: fqdn, VIP: "10.96.0.10", Port: 9080, Backends: []envoytest.Backend{{
			Endpoints: []envoytest.Endpoint{{Destination: "10.0.0.5:9080", Address: "10.0.0.5:15008"}},
		}}},
		envoytest.Service{FQDN: "db.demo.svc.cluster.local", VIP: "10.96.0.11", Port: 5432, TCP: true, Backends: []envoytest.Backend{{
			Endpoints: []envoytest.Endpoint{{Destination: "10.0.0.6:5432", Address: "10.0.0.6:15008"}},
		}}},
	), nil
}

func TestBuildValid(t *testing.T) {
	cfg, err := config.Build(testResources(t), nil, config.Options{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if cfg.TrustDomain != "cluster.local" || cfg.TLS.Certificate == nil || cfg.TLS.Roots == nil {
		t.Fatalf("tls/td not built: %+v", cfg)
	}
	ch := cfg.Chain(netip.MustParseAddrPort("10.96.0.10:9080"))
	if ch == nil || ch.HTTP == nil || ch.Service != fqdn || ch.HTTP.Log == nil || !ch.HTTP.Fault {
		t.Fatalf("http chain = %+v", ch)
	}
	tcp := cfg.Chain(netip.MustParseAddrPort("10.96.0.11:5432"))
	if tcp == nil || tcp.HTTP != nil || tcp.TCPCluster != envoytest.ClusterName(5432, "", "db.demo.svc.cluster.local") {
		t.Fatalf("tcp chain = %+v", tcp)
	}
	if cfg.Chain(netip.MustParseAddrPort("10.96.0.10:80")) != nil {
		t.Error("chain matched a wrong port")
	}
	cl := cfg.Clusters[envoytest.ClusterName(9080, "", fqdn)]
	if cl == nil || len(cl.Endpoints) != 1 || cl.Endpoints[0].Address != "10.0.0.5:15008" || cl.Breaker == nil {
		t.Fatalf("cluster = %+v", cl)
	}
}

func TestBuildRejects(t *testing.T) {
	rname := "inbound-vip|9080|http|" + fqdn
	cname := envoytest.ClusterName(9080, "", fqdn)
	tests := []struct {
		name   string
		mutate func(r *config.Resources)
		want   string // substring of the error
	}{
		{"route hash_policy", func(r *config.Resources) {
			rc := proto.Clone(r.Routes[rname]).(*routev3.RouteConfiguration)
			rc.VirtualHosts[0].Routes[0].GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{}}
			r.Routes[rname] = rc
		}, "hash_policy"},
		{"cluster ring hash", func(r *config.Resources) {
			c := proto.Clone(r.Clusters[cname]).(*clusterv3.Cluster)
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			r.Clusters[cname] = c
		}, "lb_policy"},
		{"cluster unknown field", func(r *config.Resources) {
			c := proto.Clone(r.Clusters[cname]).(*clusterv3.Cluster)
			c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
			r.Clusters[cname] = c
		}, "per_connection_buffer_limit_bytes"},
		{"connect_terminate alpn", func(r *config.Resources) {
			r.Listeners[waypointxds.ListenerConnectTerminate] = mutateTLS(r, func(c *tlsv3.CommonTlsContext) { c.AlpnProtocols = []string{"http/1.1"} })
		}, "alpn_protocols"},
		{"main_internal extra field", func(r *config.Resources) {
			l := proto.Clone(r.Listeners[waypointxds.ListenerMainInternal]).(*listenerv3.Listener)
			l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
			r.Listeners[waypointxds.ListenerMainInternal] = l
		}, "per_connection_buffer_limit_bytes"},
		{"unknown listener", func(r *config.Resources) {
			l := waypointxds.ConnectOriginate()
			l.Name = "extra"
			r.Listeners["extra"] = l
		}, "unsupported listener name"},
		{"secret extra field", func(r *config.Resources) {
			s := proto.Clone(r.Secrets[waypointxds.SecretRootCA]).(*tlsv3.Secret)
			s.GetValidationContext().AllowExpiredCertificate = true
			r.Secrets[waypointxds.SecretRootCA] = s
		}, "allow_expired_certificate"},
		{"endpoint without address", func(r *config.Resources) {
			cla := envoytest.Endpoints(cname, []envoytest.Endpoint{{Destination: "10.0.0.5:9080", Address: "bad"}})
			r.Endpoints[cname] = cla
		}, "want ip:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := testResources(t).Clone()
			tc.mutate(res)
			_, err := config.Build(res, nil, config.Options{TrustDomain: "cluster.local"})
			if err == nil || errors.Is(err, config.ErrIncomplete) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func mutateTLS(r *config.Resources, f func(*tlsv3.CommonTlsContext)) *listenerv3.Listener {
	l := waypointxds.ConnectTerminate("cluster.local")
	fc := l.FilterChains[0]
	var dtc tlsv3.DownstreamTlsContext
	if err := fc.TransportSocket.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
		panic(err)
	}
	f(dtc.CommonTlsContext)
	if err := fc.TransportSocket.GetTypedConfig().MarshalFrom(&dtc); err != nil {
		panic(err)
	}
	_ = r
	return l
}

func TestBuildIncomplete(t *testing.T) {
	cname := envoytest.ClusterName(9080, "", fqdn)
	tests := []struct {
		name   string
		mutate func(r *config.Resources)
	}{
		{"no endpoints", func(r *config.Resources) { delete(r.Endpoints, cname) }},
		{"no route config", func(r *config.Resources) { delete(r.Routes, "inbound-vip|9080|http|"+fqdn) }},
		{"no cluster", func(r *config.Resources) { delete(r.Clusters, cname); delete(r.Endpoints, cname) }},
		{"no secret", func(r *config.Resources) { delete(r.Secrets, waypointxds.SecretDefault) }},
		{"no listeners", func(r *config.Resources) { delete(r.Listeners, waypointxds.ListenerConnectTerminate) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := testResources(t).Clone()
			tc.mutate(res)
			_, err := config.Build(res, nil, config.Options{TrustDomain: "cluster.local"})
			if !errors.Is(err, config.ErrIncomplete) {
				t.Fatalf("Build error = %v, want ErrIncomplete", err)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	refs := config.Refs(testResources(t))
	if len(refs.Routes) != 1 || refs.Routes[0] != "inbound-vip|9080|http|"+fqdn {
		t.Errorf("routes = %v", refs.Routes)
	}
	if len(refs.Endpoints) != 2 || len(refs.Secrets) != 2 {
		t.Errorf("refs = %+v", refs)
	}
}
