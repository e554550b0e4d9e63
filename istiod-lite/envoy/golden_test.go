package envoy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the generator")

// renderGolden is the golden form of a configuration without secrets: a YAML document
// {listeners, routes, clusters, endpoints} of protojson resources (field names as in
// Envoy's proto, unpopulated fields left out), lists sorted by name.
func renderGolden(c *Config) ([]byte, error) {
	doc := map[string][]json.RawMessage{}
	add := func(key string, m proto.Message) error {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		doc[key] = append(doc[key], b)
		return nil
	}
	for _, r := range c.Listeners {
		if err := add("listeners", r); err != nil {
			return nil, err
		}
	}
	for _, r := range c.Routes {
		if err := add("routes", r); err != nil {
			return nil, err
		}
	}
	for _, r := range c.Clusters {
		if err := add("clusters", r); err != nil {
			return nil, err
		}
	}
	for _, r := range c.Endpoints {
		if err := add("endpoints", r); err != nil {
			return nil, err
		}
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// parseGolden reads a golden file back into a Config (SecretsOmitted).
func parseGolden(b []byte) (*Config, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	var doc map[string][]json.RawMessage
	if err := json.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	c := &Config{SecretsOmitted: true}
	for key, items := range doc {
		for i, raw := range items {
			var m proto.Message
			switch key {
			case "listeners":
				l := &listenerv3.Listener{}
				c.Listeners, m = append(c.Listeners, l), l
			case "routes":
				r := &routev3.RouteConfiguration{}
				c.Routes, m = append(c.Routes, r), r
			case "clusters":
				cl := &clusterv3.Cluster{}
				c.Clusters, m = append(c.Clusters, cl), cl
			case "endpoints":
				e := &endpointv3.ClusterLoadAssignment{}
				c.Endpoints, m = append(c.Endpoints, e), e
			default:
				return nil, fmt.Errorf("unknown key %q", key)
			}
			if err := protojson.Unmarshal(raw, m); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
			}
		}
	}
	return c, nil
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			c, err := GenerateConfig(sc.w)
			if err != nil {
				t.Fatalf("GenerateConfig: %v", err)
			}
			got, err := renderGolden(c)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			path := filepath.Join("testdata", sc.name+".golden.yaml")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./istiod-lite/envoy/ -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output (run with -update and review the diff):\n%s", path, firstDiff(got, want))
			}
		})
	}
}

// TestGoldenFilesValidate checks every golden file on disk parses and validates, so a
// hand-edited or stale golden cannot hide an invalid configuration.
func TestGoldenFilesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < len(scenarios()) {
		t.Fatalf("found %d golden files, want %d (run with -update)", len(files), len(scenarios()))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseGolden(b)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := Validate(c); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if len(c.Listeners) != 3 || len(c.Clusters) < 3 {
				t.Errorf("got %d listeners, %d clusters; want 3 listeners and at least 3 clusters", len(c.Listeners), len(c.Clusters))
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w []byte
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if !bytes.Equal(g, w) {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, g, w)
		}
	}
	return "(equal lines, different length)"
}
