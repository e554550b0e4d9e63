package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"one", "a: 1\n", 1},
		{"leading comment only document", "# c\n---\na: 1\n---\nb: 2\n", 2},
		{"empty documents", "---\n---\na: 1\n---\n", 1},
		{"separator inside text is kept", "a: |\n  x --- y\n", 1},
		{"crlf", "a: 1\r\n---\r\nb: 2\r\n", 2},
		{"nothing", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitDocuments([]byte(tc.in)); len(got) != tc.want {
				t.Fatalf("splitDocuments(%q) = %d documents %q, want %d", tc.in, len(got), got, tc.want)
			}
		})
	}
}

func TestExtract(t *testing.T) {
	dir := t.TempDir()
	crd := func(name string) string {
		return "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: " + name + "\n"
	}
	stream := "# generated\n" + crd("a.example.com") + "---\n" + crd("b.example.com") + "---\nkind: ValidatingAdmissionPolicy\nmetadata: {name: p}\n"
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(stream), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := extract(dir, source{files: []string{"*.yaml"}, wanted: []string{"b.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["b.example.com"]) != crd("b.example.com") {
		t.Fatalf("extract = %q, want only b.example.com verbatim", got)
	}
	_, err = extract(dir, source{files: []string{"*.yaml"}, wanted: []string{"a.example.com", "c.example.com"}})
	if err == nil || !strings.Contains(err.Error(), "c.example.com") {
		t.Fatalf("extract of a missing CRD: err = %v, want one naming c.example.com", err)
	}

	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "stale.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := write(out, map[string][]byte{"b.example.com.yaml": got["b.example.com"]}); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	if len(names) != 1 || filepath.Base(names[0]) != "b.example.com.yaml" {
		t.Fatalf("out holds %v, want only b.example.com.yaml", names)
	}
}
