package charts

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// Render runs `helm template releaseName chartDir --namespace namespace` with helmBin,
// passing values (JSON-encoded on stdin, as a values file overriding the chart's
// values.yaml; nil means the defaults), and returns the rendered objects in Helm's
// output order. CRDs under the chart's crds/ are not included (see CRDs). The error
// carries Helm's stderr when Helm fails, and a decode error when its output is not a
// stream of Kubernetes objects.
func Render(ctx context.Context, helmBin, chartDir, releaseName, namespace string, values map[string]any) ([]unstructured.Unstructured, error) {
	if values == nil {
		values = map[string]any{}
	}
	in, err := stdjson.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("render %s: encode values: %w", chartDir, err)
	}
	cmd := exec.CommandContext(ctx, helmBin, "template", releaseName, chartDir, "--namespace", namespace, "--values", "-")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("render %s: helm template: %w: %s", chartDir, err, strings.TrimSpace(stderr.String()))
	}
	objs, err := Decode(&stdout)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", chartDir, err)
	}
	return objs, nil
}

// Decode reads a stream of YAML (or JSON) documents, such as `helm template` output or a
// CRD file, and returns one object per non-empty document. Every object must have
// apiVersion and kind; a document that is not an object is an error.
func Decode(r io.Reader) ([]unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []unstructured.Unstructured
	for i := 0; ; i++ {
		var raw stdjson.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
			continue // comments only, or an empty document between separators
		}
		var doc map[string]any
		// apimachinery's json keeps integers as int64, as unstructured objects expect.
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("decode document %d: %w", i, err)
		}
		if len(doc) == 0 {
			continue
		}
		u := unstructured.Unstructured{Object: doc}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("decode document %d: object without apiVersion or kind", i)
		}
		objs = append(objs, u)
	}
}
