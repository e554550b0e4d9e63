package kubefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pod(name string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: demo}\nstatus: {podIP: 10.0.0.1}\n"
}

// TestLoaderReusesUnchangedFiles checks the Loader's contract: objects of files that did
// not change are the same pointers in the next snapshot, a changed file is reparsed, a
// removed file's objects are gone, and a broken file fails the load without losing the
// remembered state.
func TestLoaderReusesUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", pod("a"))
	write("b.yaml", pod("b"))
	write("c.yaml", pod("c"))
	var l Loader
	first, err := l.Load(dir)
	if err != nil || len(first.Pods) != 3 {
		t.Fatalf("first load: %v, %d pods", err, len(first.Pods))
	}

	write("b.yaml", pod("b")+"---\n"+pod("b2"))
	if err := os.Remove(filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	second, err := l.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, p := range second.Pods {
		names = append(names, p.Name)
	}
	if len(names) != 3 || names[0] != "a" || names[1] != "b" || names[2] != "b2" {
		t.Fatalf("pods after change: %v, want [a b b2]", names)
	}
	if second.Pods[0] != first.Pods[0] {
		t.Error("pod a (unchanged file) was reparsed: want the same object")
	}
	if second.Pods[1] == first.Pods[1] {
		t.Error("pod b (changed file) was reused: want a new object")
	}
	// Same size, rewritten at once: only the content tells the change.
	write("a.yaml", strings.Replace(pod("a"), "10.0.0.1", "10.0.0.2", 1))
	if again, err := l.Load(dir); err != nil || again.Pods[0].Status.PodIP != "10.0.0.2" {
		t.Fatalf("same-size rewrite not seen: %v", err)
	}
	write("a.yaml", pod("a"))
	if second, err = l.Load(dir); err != nil {
		t.Fatal(err)
	}

	write("a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [broken\n")
	if _, err := l.Load(dir); err == nil {
		t.Fatal("broken file loaded without error")
	}
	write("a.yaml", pod("a"))
	third, err := l.Load(dir)
	if err != nil || len(third.Pods) != 3 {
		t.Fatalf("load after repair: %v, %d pods", err, len(third.Pods))
	}
	if third.Pods[1] != second.Pods[1] {
		t.Error("pod b was reparsed after an unrelated failed load: want the same object")
	}
}
