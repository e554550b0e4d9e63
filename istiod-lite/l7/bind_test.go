package l7

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestBindServices(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(in *Inputs)
		served []string // service names served by shop/wp
	}{
		{"namespace label", func(*Inputs) {}, []string{"ratings", "reviews"}},
		{"service opts out", func(in *Inputs) {
			in.Services[0].Labels = map[string]string{"istio.io/use-waypoint": "none"}
		}, []string{"ratings"}},
		{"service label in another namespace", func(in *Inputs) {
			in.Services[2].Labels = map[string]string{"istio.io/use-waypoint": "wp", "istio.io/use-waypoint-namespace": "shop"}
		}, []string{"outside", "ratings", "reviews"}},
		{"service label without namespace names its own", func(in *Inputs) {
			in.Services[2].Labels = map[string]string{"istio.io/use-waypoint": "wp"}
		}, []string{"ratings", "reviews"}},
		{"waypoint for workloads only", func(in *Inputs) {
			in.Gateways[0].Labels = map[string]string{"istio.io/waypoint-for": "workload"}
		}, nil},
		{"waypoint for all", func(in *Inputs) {
			in.Gateways[0].Labels = map[string]string{"istio.io/waypoint-for": "all"}
		}, []string{"ratings", "reviews"}},
		{"missing waypoint", func(in *Inputs) { in.Namespaces[0].Labels["istio.io/use-waypoint"] = "nope" }, nil},
		{"other gateway class", func(in *Inputs) { in.Gateways[0].Spec.GatewayClassName = "istio" }, nil},
		{"headless service", func(in *Inputs) {
			in.Services[0].Spec.ClusterIP, in.Services[0].Spec.ClusterIPs = "None", []string{"None"}
		}, []string{"ratings"}},
		{"nil entries", func(in *Inputs) {
			in.Services = append(in.Services, nil)
			in.Pods = append(in.Pods, nil)
			in.Namespaces = append(in.Namespaces, nil)
		}, []string{"ratings", "reviews"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			tc.edit(&in)
			res := Build(in)
			checkWellFormed(t, res)
			var got []string
			if w := res.Waypoints[wpKey]; w != nil {
				for _, s := range w.Services {
					got = append(got, s.Name)
				}
			}
			if tc.name == "other gateway class" && len(res.Waypoints) != 0 {
				t.Fatalf("waypoints = %v, want none", res.Waypoints)
			}
			if !reflect.DeepEqual(got, tc.served) {
				t.Fatalf("served = %v, want %v", got, tc.served)
			}
		})
	}
}

func TestServiceModel(t *testing.T) {
	res := Build(fixture(t))
	got := service(t, res, "reviews")
	want := Service{
		Namespace: "shop", Name: "reviews", Hostname: "reviews.shop.svc.cluster.local",
		VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		Ports: []Port{
			{Number: 5432, Name: "tcp-db", TargetPort: 15432, Protocol: ProtocolTCP},
			{Number: 9080, Name: "http", TargetPort: 9080, Protocol: ProtocolHTTP},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("service = %+v\nwant %+v", got, want)
	}
	w := res.Waypoints[wpKey]
	if w.TrustDomain != "cluster.local" {
		t.Errorf("trust domain = %q", w.TrustDomain)
	}
	var names []string
	for _, c := range w.Clusters {
		names = append(names, c.Name())
	}
	wantNames := []string{"outbound|5432||reviews.shop.svc.cluster.local", "outbound|8080||ratings.shop.svc.cluster.local",
		"outbound|9080||reviews.shop.svc.cluster.local"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("clusters = %v, want %v", names, wantNames)
	}
	ratings := w.Clusters[1]
	if ratings.Protocol != ProtocolHTTP2 || !reflect.DeepEqual(ratings.Endpoints, []Endpoint{{IP: netip.MustParseAddr("10.1.0.5"), Port: 8081}}) {
		t.Errorf("ratings cluster = %+v (named target port, grpc)", ratings)
	}
	reviews := w.Clusters[2]
	wantEps := []Endpoint{{IP: netip.MustParseAddr("10.1.0.1"), Port: 9080}, {IP: netip.MustParseAddr("10.1.0.2"), Port: 9080}}
	if reviews.Protocol != ProtocolHTTP || !reflect.DeepEqual(reviews.Endpoints, wantEps) {
		t.Errorf("reviews cluster = %+v (not-ready pod must be left out)", reviews)
	}
	if db := w.Clusters[0]; len(db.Endpoints) != 2 || db.Endpoints[0].Port != 15432 {
		t.Errorf("db cluster = %+v, want target port 15432", db)
	}
}

func TestPortProtocol(t *testing.T) {
	tests := []struct {
		name, appProtocol string
		want              Protocol
	}{
		{"http", "", ProtocolHTTP},
		{"http-web", "", ProtocolHTTP},
		{"HTTP", "", ProtocolHTTP},
		{"http2", "", ProtocolHTTP2},
		{"http2-x", "", ProtocolHTTP2},
		{"grpc", "", ProtocolHTTP2},
		{"grpc-web", "", ProtocolHTTP},
		{"httpx", "", ProtocolTCP},
		{"tcp", "", ProtocolTCP},
		{"", "", ProtocolTCP},
		{"tcp", "http", ProtocolHTTP},
		{"http", "tcp", ProtocolTCP},
		{"x", "kubernetes.io/h2c", ProtocolHTTP2},
		{"x", "grpc", ProtocolHTTP2},
		{"x", "HTTP2", ProtocolHTTP2},
		{"http", "https", ProtocolTCP},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.appProtocol, func(t *testing.T) {
			p := corev1.ServicePort{Name: tc.name}
			if tc.appProtocol != "" {
				p.AppProtocol = &tc.appProtocol
			}
			if got := portProtocol(p); got != tc.want {
				t.Fatalf("portProtocol = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEndpointsReadiness(t *testing.T) {
	tests := []struct {
		name string
		pod  string
		want int
	}{
		{"ready", `{metadata: {name: p, namespace: shop, labels: {app: reviews}}, status: {phase: Running, podIP: 10.1.9.9, conditions: [{type: Ready, status: "True"}]}}`, 1},
		{"pending", `{metadata: {name: p, namespace: shop, labels: {app: reviews}}, status: {phase: Pending, podIP: 10.1.9.9, conditions: [{type: Ready, status: "True"}]}}`, 0},
		{"no ip", `{metadata: {name: p, namespace: shop, labels: {app: reviews}}, status: {phase: Running, conditions: [{type: Ready, status: "True"}]}}`, 0},
		{"no ready condition", `{metadata: {name: p, namespace: shop, labels: {app: reviews}}, status: {phase: Running, podIP: 10.1.9.9}}`, 0},
		{"deleting", `{metadata: {name: p, namespace: shop, labels: {app: reviews}, deletionTimestamp: "2024-01-01T00:00:00Z"}, status: {phase: Running, podIP: 10.1.9.9, conditions: [{type: Ready, status: "True"}]}}`, 0},
		{"other labels", `{metadata: {name: p, namespace: shop, labels: {app: x}}, status: {phase: Running, podIP: 10.1.9.9, conditions: [{type: Ready, status: "True"}]}}`, 0},
		{"other namespace", `{metadata: {name: p, namespace: other, labels: {app: reviews}}, status: {phase: Running, podIP: 10.1.9.9, conditions: [{type: Ready, status: "True"}]}}`, 0},
		{"bad ip", `{metadata: {name: p, namespace: shop, labels: {app: reviews}}, status: {phase: Running, podIP: "10.1.9", conditions: [{type: Ready, status: "True"}]}}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			in.Pods = []*corev1.Pod{decode[corev1.Pod](t, tc.pod)}
			res := Build(in)
			for _, c := range res.Waypoints[wpKey].Clusters {
				if c.Name() == "outbound|9080||reviews.shop.svc.cluster.local" && len(c.Endpoints) != tc.want {
					t.Fatalf("endpoints = %v, want %d", c.Endpoints, tc.want)
				}
			}
		})
	}
}

func TestBuildOptions(t *testing.T) {
	if res := Build(Inputs{}); res.Waypoints == nil || len(res.Waypoints) != 0 || len(res.Status) != 0 {
		t.Fatalf("Build(empty) = %+v", res)
	}
	in := fixture(t)
	in.DomainSuffix, in.TrustDomain = "corp.example", "td.example"
	res := Build(in)
	checkWellFormed(t, res)
	w := res.Waypoints[wpKey]
	if w.TrustDomain != "td.example" || service(t, res, "reviews").Hostname != "reviews.shop.svc.corp.example" {
		t.Fatalf("waypoint = %+v", w)
	}
}
