package config_test

import (
	"path/filepath"
	"testing"

	"github.com/ambitmesh/ambit/waypoint/config"
	"github.com/ambitmesh/ambit/waypoint/internal/envoytest"
)

// generatorGoldens are istiod-lite's golden configurations (istiod-lite/envoy
// testdata): the engine must accept every configuration the generator emits. Read as
// data, so the waypoint does not link the control plane.
var generatorGoldens = filepath.Join("..", "..", envoytest.GoldenGlob)

func TestAcceptsGeneratorGoldens(t *testing.T) {
	files, err := filepath.Glob(generatorGoldens)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no generator golden files in istiod-lite/envoy/testdata")
	}
	secrets := testResources(t).Secrets
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			res, err := envoytest.ReadGolden(f)
			if err != nil {
				t.Fatalf("read golden: %v", err)
			}
			res.Secrets = secrets
			if _, err := config.Build(res, nil, config.Options{}); err != nil {
				t.Fatalf("Build: %v", err)
			}
		})
	}
}
