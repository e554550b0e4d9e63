package route_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/authz"
	"github.com/ambitmesh/ambit/waypoint/fault"
	"github.com/ambitmesh/ambit/waypoint/route"

	// Registered so protojson resolves every Any in the goldens' listeners.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// goldenGlob names the generator's golden files: YAML documents
// {listeners, routes, clusters, endpoints} of protojson resources, written by
// istiod-lite/envoy/golden_test.go.
const goldenGlob = "../../istiod-lite/envoy/testdata/*.golden.yaml"

// TestGeneratorGoldens compiles every RouteConfiguration and every L7
// listener's RBAC, fault and access-log configuration that istiod-lite's
// generator emits, so the engine and the generator cannot drift apart
// unnoticed. Inline route_config (the HBONE terminator's CONNECT route) is
// the listener code's concern and is not compiled here.
func TestGeneratorGoldens(t *testing.T) {
	files, err := filepath.Glob(goldenGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files at %s (err %v)", goldenGlob, err)
	}
	var routes, rbacs, faults, logs int
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			j, err := yaml.YAMLToJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string][]json.RawMessage
			if err := json.Unmarshal(j, &doc); err != nil {
				t.Fatal(err)
			}
			for i, raw := range doc["routes"] {
				var rc routev3.RouteConfiguration
				if err := protojson.Unmarshal(raw, &rc); err != nil {
					t.Fatalf("routes[%d]: %v", i, err)
				}
				if _, err := route.Compile(&rc); err != nil {
					t.Errorf("routes[%d]: route.Compile: %v", i, err)
				}
				routes++
			}
			for i, raw := range doc["listeners"] {
				var l listenerv3.Listener
				if err := protojson.Unmarshal(raw, &l); err != nil {
					t.Fatalf("listeners[%d]: %v", i, err)
				}
				for _, fc := range l.GetFilterChains() {
					for _, nf := range fc.GetFilters() {
						tc := nf.GetTypedConfig()
						var hcm hcmv3.HttpConnectionManager
						if !tc.MessageIs(&hcm) {
							continue
						}
						if err := tc.UnmarshalTo(&hcm); err != nil {
							t.Fatalf("listener %q: %v", l.GetName(), err)
						}
						if hcm.GetRds() == nil {
							continue // inline CONNECT route of the HBONE terminator
						}
						r, fl, lg := compileHCM(t, l.GetName(), &hcm)
						rbacs, faults, logs = rbacs+r, faults+fl, logs+lg
					}
				}
			}
		})
	}
	if routes == 0 || rbacs == 0 || faults == 0 || logs == 0 {
		t.Errorf("compiled %d routes, %d RBAC, %d fault and %d access-log filters; want some of each", routes, rbacs, faults, logs)
	}
}

// compileHCM compiles the RBAC and fault filters and the access logs of one
// RDS-based HTTP connection manager and counts them.
func compileHCM(t *testing.T, listener string, hcm *hcmv3.HttpConnectionManager) (rbacs, faults, logs int) {
	t.Helper()
	for _, hf := range hcm.GetHttpFilters() {
		tc := hf.GetTypedConfig()
		var rb rbacv3filter.RBAC
		var fa faultv3.HTTPFault
		switch {
		case tc.MessageIs(&rb):
			if err := tc.UnmarshalTo(&rb); err != nil {
				t.Fatalf("listener %q: %v", listener, err)
			}
			if _, err := authz.Compile(&rb); err != nil {
				t.Errorf("listener %q: authz.Compile: %v", listener, err)
			}
			rbacs++
		case tc.MessageIs(&fa):
			if err := tc.UnmarshalTo(&fa); err != nil {
				t.Fatalf("listener %q: %v", listener, err)
			}
			if _, err := fault.Compile(&fa); err != nil {
				t.Errorf("listener %q: fault.Compile: %v", listener, err)
			}
			faults++
		}
	}
	if len(hcm.GetAccessLog()) > 0 {
		if _, err := accesslog.Compile(hcm.GetAccessLog(), io.Discard); err != nil {
			t.Errorf("listener %q: accesslog.Compile: %v", listener, err)
		}
		logs++
	}
	return rbacs, faults, logs
}
