package charts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ErrNoCRDs is returned (wrapped) by CRDs when the chart's crds/ directory holds no
// YAML file: the base chart's CRDs are generated, not committed; run hack/gen-crds.sh.
var ErrNoCRDs = errors.New("no CRDs in chart (run hack/gen-crds.sh)")

// CRDs returns the CustomResourceDefinitions in chartDir/crds/*.yaml (file name order),
// as Helm installs them before the chart's templates. Any other kind in those files is
// an error.
func CRDs(chartDir string) ([]unstructured.Unstructured, error) {
	paths, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list crds: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("list crds in %s: %w", chartDir, ErrNoCRDs)
	}
	var crds []unstructured.Unstructured
	for _, p := range paths {
		objs, err := decodeFile(p)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				return nil, fmt.Errorf("read crds: %s holds a %s", p, o.GetKind())
			}
			crds = append(crds, o)
		}
	}
	return crds, nil
}

func decodeFile(path string) ([]unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read crds: %w", err)
	}
	defer f.Close()
	objs, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("read crds %s: %w", path, err)
	}
	return objs, nil
}
