package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// podsPerFile is how many pods one YAML file of the file source holds: a change
// rewrites (and istiod-lite reparses) one file.
const podsPerFile = 10

// fileSource is istiod-lite's file config source: a directory with the namespaces,
// the services, and the pods in files of podsPerFile.
type fileSource struct {
	dir      string
	services int
	podDocs  [][]byte // each pod's YAML document, kept to rewrite its file
}

func newFileSource(dir string, pods, services int) (*fileSource, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create config dir: %w", err)
	}
	s := &fileSource{dir: dir, services: services}
	var buf bytes.Buffer
	for _, ns := range namespaceObjects() {
		if err := appendDoc(&buf, ns); err != nil {
			return nil, err
		}
	}
	for i := range services {
		if err := appendDoc(&buf, serviceObject(i, true)); err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(filepath.Join(dir, "base.yaml"), buf.Bytes()); err != nil {
		return nil, err
	}
	s.podDocs = make([][]byte, pods)
	for i := range pods {
		doc, err := yaml.Marshal(podObject(i, services, revision(0)))
		if err != nil {
			return nil, fmt.Errorf("render pod: %w", err)
		}
		s.podDocs[i] = doc
	}
	for f := 0; f*podsPerFile < pods; f++ {
		if err := s.writeFile(f); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *fileSource) args() []string { return []string{"--config-dir", s.dir} }

// change sets pod i's revision label and rewrites its file.
func (s *fileSource) change(_ context.Context, i int, rev string) error {
	doc, err := yaml.Marshal(podObject(i, s.services, rev))
	if err != nil {
		return fmt.Errorf("render pod: %w", err)
	}
	s.podDocs[i] = doc
	return s.writeFile(i / podsPerFile)
}

func (s *fileSource) close() error { return nil }

func (s *fileSource) writeFile(f int) error {
	var buf bytes.Buffer
	for i := f * podsPerFile; i < (f+1)*podsPerFile && i < len(s.podDocs); i++ {
		buf.WriteString("---\n")
		buf.Write(s.podDocs[i])
	}
	return writeAtomic(filepath.Join(s.dir, fmt.Sprintf("pods-%04d.yaml", f)), buf.Bytes())
}

func appendDoc(buf *bytes.Buffer, obj any) error {
	doc, err := yaml.Marshal(obj)
	if err != nil {
		return fmt.Errorf("render %T: %w", obj, err)
	}
	buf.WriteString("---\n")
	buf.Write(doc)
	return nil
}

// writeAtomic writes a dot file (which the loader skips) and renames it into place, so
// istiod-lite never reads a half-written file.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
