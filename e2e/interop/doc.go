// Package interop holds Ambit's interoperability tests (testing tier 4) against real
// third-party peers: Istio's own Go HBONE client and server (istio.io/istio/pkg/hbone)
// talking to Ambit's pkg/hbone over mutual TLS with certificates from Ambit's CA; and
// Istio's control-plane logic (istio.io/istio/pilot/test/xds) fed the same Kubernetes
// YAML as istiod-lite's model, their WDS compared field by field (TestWDSDifferential,
// scenarios under testdata/wds, accepted differences listed in wds_diff_test.go).
//
// It is a separate Go module (github.com/ambitmesh/ambit/e2e/interop) so that Istio's
// large dependency graph never reaches Ambit's product binaries; the main module is
// reached through a replace directive. Run the tests with `make test-interop` or
// `cd e2e/interop && go test ./...`. The loopback tests need no privileges;
// TestPrivilegedIstioClientThroughZtunnel (root) runs Istio's client through a real
// ztunnel in a network-namespace mesh (e2e/mesh).
package interop
