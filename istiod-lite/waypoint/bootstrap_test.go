package waypoint

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpccredv3 "github.com/envoyproxy/go-control-plane/envoy/config/grpc_credential/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (or UPDATE_GOLDEN=1)")

// parseBootstrap reads bootstrap YAML as Envoy does (YAML -> JSON -> proto) and
// validates it and every typed config inside it.
func parseBootstrap(t *testing.T, y string) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	must(t, err)
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, b); err != nil {
		t.Fatalf("parse bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("validate bootstrap: %v", err)
	}
	validateAnys(t, b.ProtoReflect())
	return b
}

// validateAnys unpacks every Any under m and runs its ValidateAll, recursively.
func validateAnys(t *testing.T, m protoreflect.Message) {
	t.Helper()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("validate %s: %v", a.GetTypeUrl(), err)
			}
		}
		validateAnys(t, inner.ProtoReflect())
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				validateAnys(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				validateAnys(t, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			validateAnys(t, v.Message())
		}
		return true
	})
}

func envoyConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig()
	cfg.Engine, cfg.EnvoyImage = EngineEnvoy, "envoyproxy/envoy:v1.36.2"
	cfg, err := cfg.withDefaults()
	must(t, err)
	return cfg
}

func TestBootstrap(t *testing.T) {
	cfg := envoyConfig(t)
	y, err := cfg.renderBootstrap(waypointGateway("shop", "wp"))
	must(t, err)
	golden := filepath.Join("testdata", "envoy-bootstrap.yaml")
	if *update || os.Getenv("UPDATE_GOLDEN") == "1" {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(golden, []byte(y), 0o644))
	}
	want, err := os.ReadFile(golden)
	must(t, err)
	if string(want) != y {
		t.Errorf("bootstrap differs from %s (go test -update to accept):\n%s", golden, y)
	}

	b := parseBootstrap(t, y)
	if b.Node.Cluster != "wp.shop" {
		t.Errorf("node cluster = %q", b.Node.Cluster)
	}
	meta := b.Node.Metadata.AsMap()
	for k, v := range map[string]string{"NAMESPACE": "shop", "SERVICE_ACCOUNT": "wp", "GATEWAY_NAME": "wp", "CLUSTER_ID": "c1"} {
		if meta[k] != v {
			t.Errorf("node metadata %s = %v, want %q", k, meta[k], v)
		}
	}
	ads := b.DynamicResources.AdsConfig
	if ads.ApiType != corev3.ApiConfigSource_DELTA_GRPC || ads.TransportApiVersion != corev3.ApiVersion_V3 || len(ads.GrpcServices) != 1 {
		t.Fatalf("ads config = %v", ads)
	}
	if b.DynamicResources.LdsConfig.GetAds() == nil || b.DynamicResources.CdsConfig.GetAds() == nil {
		t.Errorf("lds/cds not over ADS: %v", b.DynamicResources)
	}
	svc := ads.GrpcServices[0]
	g := svc.GetGoogleGrpc()
	if g.GetTargetUri() != "istiod.istio-system.svc:15012" ||
		g.GetChannelCredentials().GetSslCredentials().GetRootCerts().GetFilename() != RootCertFile ||
		g.GetChannelArgs().GetArgs()["grpc.ssl_target_name_override"].GetStringValue() != "istiod.istio-system.svc" {
		t.Errorf("xds grpc service = %v", g)
	}
	if md := svc.InitialMetadata; len(md) != 1 || md[0].Key != "clusterid" || md[0].Value != "c1" {
		t.Errorf("initial metadata = %v", md)
	}
	creds := &grpccredv3.FileBasedMetadataConfig{}
	must(t, g.GetCallCredentials()[0].GetFromPlugin().GetTypedConfig().UnmarshalTo(creds))
	if creds.SecretData.GetFilename() != TokenFile || creds.HeaderKey != "authorization" || creds.HeaderPrefix != "Bearer " {
		t.Errorf("token credentials = %v", creds)
	}
	if len(b.BootstrapExtensions) != 1 || b.BootstrapExtensions[0].Name != "envoy.bootstrap.internal_listener" {
		t.Errorf("bootstrap extensions = %v", b.BootstrapExtensions)
	}
	if a := b.Admin.GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 15000 {
		t.Errorf("admin = %v", a)
	}
	var ports []uint32
	for _, l := range b.StaticResources.Listeners {
		ports = append(ports, l.Address.GetSocketAddress().GetPortValue())
	}
	if len(ports) != 2 || ports[0] != 15021 || ports[1] != 15020 {
		t.Errorf("static listener ports = %v", ports)
	}
}

// TestNodeOverride: the --config-yaml, once the kubelet has expanded $(VAR), merges
// into the bootstrap's node as Envoy merges it: Istio's node id and INSTANCE_IPS,
// the file's metadata kept.
func TestNodeOverride(t *testing.T) {
	cfg := envoyConfig(t)
	y, err := cfg.renderBootstrap(waypointGateway("shop", "wp"))
	must(t, err)
	b := parseBootstrap(t, y)

	args := cfg.envoyArgs()
	var override string
	for i, a := range args {
		if a == "--config-yaml" {
			override = args[i+1]
		}
	}
	expanded := strings.NewReplacer("$(INSTANCE_IP)", "10.20.1.7", "$(POD_NAME)", "wp-5d8f-x2", "$(POD_NAMESPACE)", "shop").Replace(override)
	if strings.Contains(expanded, "$(") {
		t.Fatalf("unexpanded variable in %s", expanded)
	}
	js, err := yaml.YAMLToJSON([]byte(expanded))
	must(t, err)
	over := &bootstrapv3.Bootstrap{}
	must(t, protojson.Unmarshal(js, over))
	proto.Merge(b, over)
	must(t, b.ValidateAll())
	if want := "router~10.20.1.7~wp-5d8f-x2.shop~shop.svc.cluster.local"; b.Node.Id != want {
		t.Errorf("node id = %q, want %q", b.Node.Id, want)
	}
	meta := b.Node.Metadata.AsMap()
	if meta["INSTANCE_IPS"] != "10.20.1.7" || meta["GATEWAY_NAME"] != "wp" || b.Node.Cluster != "wp.shop" {
		t.Errorf("node = %v", b.Node)
	}
}
