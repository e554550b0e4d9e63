package waypointxds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
)

type validator interface {
	proto.Message
	ValidateAll() error
}

func TestFixedResourcesValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func() validator
	}{
		{"connect_terminate", func() validator { return ConnectTerminate("example.org") }},
		{"connect_originate", func() validator { return ConnectOriginate() }},
		{"main_internal listener", func() validator { return MainInternal(nil) }},
		{"main_internal cluster", func() validator { return MainInternalCluster() }},
		{"connect_originate cluster", func() validator { return ConnectOriginateCluster("example.org") }},
		{"common tls", func() validator { return CommonTLS("example.org") }},
		{"internal upstream socket", func() validator { return InternalUpstreamSocket() }},
		{"access log", func() validator { return StdoutAccessLog() }},
		{"tunnel endpoint", func() validator { return TunnelEndpoint("10.0.0.1:80", "10.0.0.1:15008") }},
		{"default secret", func() validator { return DefaultSecret([]byte("chain"), []byte("key")) }},
		{"root secret", func() validator { return RootCASecret([]byte("roots")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tc.make(), tc.make()
			if err := a.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			ab, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			bb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(b)
			if string(ab) != string(bb) {
				t.Error("two builds differ in their wire encoding")
			}
		})
	}
}

func TestConnectTerminate(t *testing.T) {
	l := ConnectTerminate("example.org")
	if l.GetName() != ListenerConnectTerminate || l.GetAddress().GetSocketAddress().GetPortValue() != 15008 {
		t.Fatalf("name %q port %d", l.GetName(), l.GetAddress().GetSocketAddress().GetPortValue())
	}
	ts := l.GetFilterChains()[0].GetTransportSocket()
	var dtc tlsv3.DownstreamTlsContext
	if ts.GetName() != TransportSocketTLS || ts.GetTypedConfig().UnmarshalTo(&dtc) != nil {
		t.Fatalf("transport socket %q", ts.GetName())
	}
	if !dtc.GetRequireClientCertificate().GetValue() {
		t.Error("client certificate not required")
	}
	san := dtc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(san) != 1 || san[0].GetMatcher().GetPrefix() != "spiffe://example.org/" {
		t.Errorf("SAN matchers %v", san)
	}
}

func TestProtocolOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		h2   *corev3.Http2ProtocolOptions
	}{{"http1", nil}, {"http2", HBONEHTTP2Options()}} {
		t.Run(tc.name, func(t *testing.T) {
			var o httpv3.HttpProtocolOptions
			if err := ProtocolOptions(tc.h2)[HTTPProtocolOptionsKey].UnmarshalTo(&o); err != nil {
				t.Fatal(err)
			}
			cfg := o.GetExplicitHttpConfig()
			if got := cfg.GetHttp2ProtocolOptions(); tc.h2 != nil && !proto.Equal(got, tc.h2) {
				t.Errorf("http2 options %v, want %v", got, tc.h2)
			}
			if tc.h2 == nil && cfg.GetHttpProtocolOptions() == nil {
				t.Error("want explicit HTTP/1.1")
			}
		})
	}
}

func TestStdoutAccessLog(t *testing.T) {
	var s streamv3.StdoutAccessLog
	if err := StdoutAccessLog().GetTypedConfig().UnmarshalTo(&s); err != nil {
		t.Fatal(err)
	}
	fields := s.GetLogFormat().GetJsonFormat().GetFields()
	if len(fields) != len(AccessLogFormat) {
		t.Fatalf("%d keys, want %d", len(fields), len(AccessLogFormat))
	}
	for k, v := range AccessLogFormat {
		if fields[k].GetStringValue() != v {
			t.Errorf("%s = %q, want %q", k, fields[k].GetStringValue(), v)
		}
	}
	if AccessLogFormat["downstream_peer"] != "%FILTER_STATE(io.istio.peer_principal:PLAIN)%" {
		t.Errorf("downstream_peer %q", AccessLogFormat["downstream_peer"])
	}
}

func TestTunnelEndpoint(t *testing.T) {
	ep := TunnelEndpoint("10.0.0.1:8080", "10.0.0.1:15008")
	ia := ep.GetEndpoint().GetAddress().GetEnvoyInternalAddress()
	if ia.GetServerListenerName() != ListenerConnectOriginate || ia.GetEndpointId() != "10.0.0.1:8080" {
		t.Errorf("internal address %v", ia)
	}
	f := ep.GetMetadata().GetFilterMetadata()[TunnelMetadataKey].GetFields()
	if f[TunnelDestinationKey].GetStringValue() != "10.0.0.1:8080" || f[TunnelAddressKey].GetStringValue() != "10.0.0.1:15008" {
		t.Errorf("tunnel metadata %v", f)
	}
	if ep.GetHealthStatus() != corev3.HealthStatus_HEALTHY {
		t.Errorf("health %v", ep.GetHealthStatus())
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ChainName("a.ns.svc.cluster.local", 80, true), "inbound-vip|80|http|a.ns.svc.cluster.local"},
		{ChainName("a.ns.svc.cluster.local", 5432, false), "inbound-vip|5432|tcp|a.ns.svc.cluster.local"},
		{OutboundClusterName(80, "", "a.ns.svc.cluster.local"), "outbound|80||a.ns.svc.cluster.local"},
		{OutboundClusterName(80, "v2", "a.ns.svc.cluster.local"), "outbound|80|v2|a.ns.svc.cluster.local"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestSecretsCopyInput(t *testing.T) {
	chain, key, roots := []byte("chain"), []byte("key"), []byte("roots")
	d, r := DefaultSecret(chain, key), RootCASecret(roots)
	chain[0], key[0], roots[0] = 'X', 'X', 'X'
	if d.GetName() != SecretDefault || string(d.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) != "chain" ||
		string(d.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "key" {
		t.Errorf("default secret %v", d)
	}
	if r.GetName() != SecretRootCA || string(r.GetValidationContext().GetTrustedCa().GetInlineBytes()) != "roots" {
		t.Errorf("root secret %v", r)
	}
}
