package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// testSecrets mints a self-signed ECDSA P-256 certificate with the waypoint's SPIFFE ID.
func testSecrets(t testing.TB) Secrets {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse("spiffe://cluster.local/ns/bookinfo/sa/waypoint")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{}, URIs: []*url.URL{id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return Secrets{
		CertChainPEM: cert,
		KeyPEM:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		RootPEM:      cert,
	}
}

// mutate generates the rbac scenario with secrets, applies f to a deep copy, and
// returns Validate's error.
func mutate(t *testing.T, f func(c *Config)) error {
	t.Helper()
	c, err := Generate(rbacScenario(), testSecrets(t))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	cp := &Config{}
	for _, l := range c.Listeners {
		cp.Listeners = append(cp.Listeners, proto.CloneOf(l))
	}
	for _, r := range c.Routes {
		cp.Routes = append(cp.Routes, proto.CloneOf(r))
	}
	for _, cl := range c.Clusters {
		cp.Clusters = append(cp.Clusters, proto.CloneOf(cl))
	}
	for _, e := range c.Endpoints {
		cp.Endpoints = append(cp.Endpoints, proto.CloneOf(e))
	}
	for _, s := range c.Secrets {
		cp.Secrets = append(cp.Secrets, proto.CloneOf(s))
	}
	f(cp)
	return Validate(cp)
}

func clusterNamed(c *Config, name string) *clusterv3.Cluster {
	for _, cl := range c.Clusters {
		if cl.GetName() == name {
			return cl
		}
	}
	return nil
}

func listenerNamed(c *Config, name string) *listenerv3.Listener {
	for _, l := range c.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	return nil
}

func TestValidateDangling(t *testing.T) {
	def := "outbound|9080||" + reviews
	tests := []struct {
		name string
		f    func(c *Config)
		want string // substring of the error
	}{
		{"valid", func(*Config) {}, ""},
		{"rds route missing", func(c *Config) { c.Routes = nil },
			`listener "main_internal": filter_chains[0].filters[0].typed_config<HttpConnectionManager>.rds.route_config_name: RouteConfiguration "inbound-vip|9080|http|reviews.bookinfo.svc.cluster.local" not found`},
		{"route cluster missing", func(c *Config) {
			c.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "nope"}
		}, `route configuration "inbound-vip|9080|http|reviews.bookinfo.svc.cluster.local": virtual_hosts[0].routes[0].route.cluster: Cluster "nope" not found`},
		{"weighted cluster missing", func(c *Config) {
			c.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: def, Weight: u32(1)}, {Name: "gone", Weight: u32(1)}}}}
		}, `weighted_clusters.clusters[1].name: Cluster "gone" not found`},
		{"mirror cluster missing", func(c *Config) {
			c.Routes[0].VirtualHosts[0].Routes[0].GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
		}, `request_mirror_policies[0].cluster: Cluster "shadow" not found`},
		{"eds endpoints missing", func(c *Config) { c.Endpoints = nil },
			`cluster "` + def + `": eds_cluster_config: ClusterLoadAssignment "` + def + `" not found`},
		{"main_internal cluster missing", func(c *Config) {
			c.Clusters = slices.DeleteFunc(c.Clusters, func(cl *clusterv3.Cluster) bool { return cl.GetName() == waypointxds.ClusterMainInternal })
		}, `listener "connect_terminate": filter_chains[0].filters[0].typed_config<HttpConnectionManager>.route_config.virtual_hosts[0].routes[0].route.cluster: Cluster "main_internal" not found`},
		{"internal listener missing", func(c *Config) {
			c.Listeners = slices.DeleteFunc(c.Listeners, func(l *listenerv3.Listener) bool { return l.GetName() == waypointxds.ListenerMainInternal })
		},
			`envoy_internal_address.server_listener_name: internal Listener "main_internal" not found`},
		{"secret missing", func(c *Config) { c.Secrets = c.Secrets[:1] }, `Secret "default" not found`},
		{"orphan route", func(c *Config) {
			c.Routes = append(c.Routes, &routev3.RouteConfiguration{Name: "zz"})
		}, `route configuration "zz": not referenced by any listener`},
		{"duplicate cluster", func(c *Config) { c.Clusters = append(c.Clusters, proto.CloneOf(c.Clusters[0])) }, `duplicate name`},
		{"proto validation", func(c *Config) { clusterNamed(c, def).ConnectTimeout = duration(-time.Second) },
			`cluster "` + def + `": (resource): invalid Cluster.ConnectTimeout`},
		{"packed proto validation", func(c *Config) {
			listenerNamed(c, waypointxds.ListenerMainInternal).FilterChains[0].Filters[0].GetTypedConfig().Value = nil // empty HCM
		}, `typed_config<HttpConnectionManager>: invalid HttpConnectionManager.StatPrefix`},
		{"same chain match", func(c *Config) {
			l := listenerNamed(c, waypointxds.ListenerMainInternal)
			l.FilterChains = append(l.FilterChains, proto.CloneOf(l.FilterChains[0]))
		}, `same match as filter_chains[0]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mutate(t, tc.f)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate error:\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}

func TestGenerateWithoutSecretsFails(t *testing.T) {
	_, err := Generate(rbacScenario(), Secrets{})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `Secret "ROOTCA" not found`) {
		t.Fatalf("Generate without secrets: %v, want a missing ROOTCA secret", err)
	}
	_, err = Generate(rbacScenario(), Secrets{CertChainPEM: []byte("x"), KeyPEM: []byte("y"), RootPEM: []byte("z")})
	if !errors.Is(err, ErrInvalidSecrets) {
		t.Fatalf("Generate with non-PEM secrets: %v, want ErrInvalidSecrets", err)
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate(nil) = %v", err)
	}
	if err := Validate(&Config{Listeners: []*listenerv3.Listener{nil}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate(nil listener) = %v", err)
	}
}
