// Package kubefile reads a directory of Kubernetes YAML manifests (Namespace, Pod,
// Service, ServiceAccount; other kinds are skipped) into typed objects, and watches the
// directory for changes. It is the file-based config source (F-CP-3) shared by
// istiod-lite and the node agent for local runs.
package kubefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Snapshot is the content of a config directory at one moment. Slices are sorted by
// namespace then name.
type Snapshot struct {
	Namespaces      []*corev1.Namespace
	Pods            []*corev1.Pod
	Services        []*corev1.Service
	ServiceAccounts []*corev1.ServiceAccount
}

// Namespace returns the named namespace, or nil.
func (s *Snapshot) Namespace(name string) *corev1.Namespace {
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// Pod returns the pod with the given namespace and name, or nil.
func (s *Snapshot) Pod(namespace, name string) *corev1.Pod {
	for _, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// Load reads every *.yaml, *.yml and *.json file directly in dir (not subdirectories),
// each holding one or more documents separated by "---". A document that does not parse
// makes Load fail with the file name in the error: a broken config is never half-applied.
// Namespaced objects with no namespace get "default".
func Load(dir string) (*Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load config dir: %w", err)
	}
	snap := &Snapshot{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !isManifest(name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load config dir: %w", err)
		}
		if err := snap.add(data); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
	}
	snap.sort()
	return snap, nil
}

func isManifest(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// typeMeta is decoded first to pick the Go type of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func (s *Snapshot) add(data []byte) error {
	r := yamlutil.NewYAMLReader(bufioReader(data))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if err := s.addDocument(doc); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
	}
}

func (s *Snapshot) addDocument(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("decode type: %w", err)
	}
	if tm.Kind == "" {
		// Comment-only documents decode to nothing.
		if strings.TrimSpace(stripComments(doc)) == "" {
			return nil
		}
		return errors.New("decode type: missing kind")
	}
	if tm.APIVersion != "v1" {
		return nil // only core/v1 kinds are read here; other groups are skipped
	}
	switch tm.Kind {
	case "Namespace":
		obj := &corev1.Namespace{}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("decode Namespace: %w", err)
		}
		s.Namespaces = append(s.Namespaces, obj)
	case "Pod":
		obj := &corev1.Pod{}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("decode Pod: %w", err)
		}
		defaultNamespace(&obj.Namespace)
		s.Pods = append(s.Pods, obj)
	case "Service":
		obj := &corev1.Service{}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("decode Service: %w", err)
		}
		defaultNamespace(&obj.Namespace)
		s.Services = append(s.Services, obj)
	case "ServiceAccount":
		obj := &corev1.ServiceAccount{}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("decode ServiceAccount: %w", err)
		}
		defaultNamespace(&obj.Namespace)
		s.ServiceAccounts = append(s.ServiceAccounts, obj)
	}
	return nil
}

func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = "default"
	}
}

func stripComments(doc []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(t)
		}
	}
	return b.String()
}

func (s *Snapshot) sort() {
	sort.Slice(s.Namespaces, func(i, j int) bool { return s.Namespaces[i].Name < s.Namespaces[j].Name })
	sort.Slice(s.Pods, func(i, j int) bool {
		return less(s.Pods[i].Namespace, s.Pods[i].Name, s.Pods[j].Namespace, s.Pods[j].Name)
	})
	sort.Slice(s.Services, func(i, j int) bool {
		return less(s.Services[i].Namespace, s.Services[i].Name, s.Services[j].Namespace, s.Services[j].Name)
	})
	sort.Slice(s.ServiceAccounts, func(i, j int) bool {
		return less(s.ServiceAccounts[i].Namespace, s.ServiceAccounts[i].Name, s.ServiceAccounts[j].Namespace, s.ServiceAccounts[j].Name)
	})
}

func less(ns1, n1, ns2, n2 string) bool {
	if ns1 != ns2 {
		return ns1 < ns2
	}
	return n1 < n2
}
