package kubefile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func pod(name string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: demo}\nstatus: {podIP: 10.0.0.1}\n"
}

// TestLoaderReusesUnchangedFiles checks the Loader's contract: objects of files and of
// documents that did not change are the same pointers in the next snapshot, a changed
// document is reparsed, a removed file's objects are gone, and a broken file fails the
// load without losing the remembered state.
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
	if second.Pods[1] != first.Pods[1] {
		t.Error("pod b (unchanged document of a changed file) was reparsed: want the same object")
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

// TestLoaderMatchesLoad: after every step of a sequence of edits (documents changed in
// place, added, removed, renamed, files added and removed), the Loader's snapshot, by
// Load or by LoadChanged with the names edited, equals a fresh Load of the directory,
// in the same order.
func TestLoaderMatchesLoad(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]string{} // file -> documents
	write := func(name string) {
		t.Helper()
		data := ""
		for _, d := range files[name] {
			data += "---\n" + d
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	podIP := func(name, ip string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: demo}\nstatus: {podIP: " + ip + "}\n"
	}
	svc := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: demo}\nspec: {clusterIP: 10.96.0.1}\n"
	}
	files["b.yaml"] = []string{podIP("p3", "10.0.0.3"), podIP("p1", "10.0.0.1"), svc("s1")}
	files["a.yaml"] = []string{podIP("p2", "10.0.0.2"), podIP("p0", "10.0.0.9")}
	write("a.yaml")
	write("b.yaml")

	steps := []struct {
		name string
		edit func() []string // returns the file names touched
	}{
		{"change one document in place", func() []string {
			files["b.yaml"][1] = podIP("p1", "10.0.0.11")
			write("b.yaml")
			return []string{"b.yaml"}
		}},
		{"rename a pod (order changes)", func() []string {
			files["a.yaml"][0] = podIP("p9", "10.0.0.2")
			write("a.yaml")
			return []string{"a.yaml"}
		}},
		{"add a document", func() []string {
			files["a.yaml"] = append(files["a.yaml"], svc("s0"))
			write("a.yaml")
			return []string{"a.yaml"}
		}},
		{"add a file", func() []string {
			files["c.yaml"] = []string{podIP("p5", "10.0.0.5")}
			write("c.yaml")
			return []string{"c.yaml"}
		}},
		{"remove a file", func() []string {
			delete(files, "b.yaml")
			os.Remove(filepath.Join(dir, "b.yaml"))
			return []string{"b.yaml"}
		}},
		{"the same object in two files, then changed in one", func() []string {
			files["c.yaml"] = append(files["c.yaml"], podIP("p0", "10.0.0.10"))
			write("c.yaml")
			files["a.yaml"][1] = podIP("p0", "10.0.0.12")
			write("a.yaml")
			return []string{"a.yaml", "c.yaml"}
		}},
	}
	for _, changedOnly := range []bool{false, true} {
		var l Loader
		if _, err := l.Load(dir); err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			touched := st.edit()
			var got *Snapshot
			var err error
			if changedOnly {
				set := map[string]bool{}
				for _, n := range touched {
					set[n] = true
				}
				got, err = l.LoadChanged(dir, set)
			} else {
				got, err = l.Load(dir)
			}
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			want, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := describe(got), describe(want); g != w {
				t.Fatalf("changedOnly=%v, %s:\n got %s\nwant %s", changedOnly, st.name, g, w)
			}
		}
		// Put the files back for the second pass.
		for name := range files {
			os.Remove(filepath.Join(dir, name))
		}
		clear(files)
		files["b.yaml"] = []string{podIP("p3", "10.0.0.3"), podIP("p1", "10.0.0.1"), svc("s1")}
		files["a.yaml"] = []string{podIP("p2", "10.0.0.2"), podIP("p0", "10.0.0.9")}
		write("a.yaml")
		write("b.yaml")
	}
}

// TestLoadChangedReadsOnlyNamedFiles: a file changed on disk but not named is not
// read (its remembered objects stay) until a full Load.
func TestLoadChangedReadsOnlyNamedFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(pod("a")), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(pod("b")), 0o644)
	var l Loader
	if _, err := l.Load(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(strings.Replace(pod("a"), "10.0.0.1", "10.0.0.7", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(strings.Replace(pod("b"), "10.0.0.1", "10.0.0.8", 1)), 0o644)
	s, err := l.LoadChanged(dir, map[string]bool{"b.yaml": true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pods[0].Status.PodIP != "10.0.0.1" || s.Pods[1].Status.PodIP != "10.0.0.8" {
		t.Fatalf("LoadChanged(b): pod IPs %s %s, want 10.0.0.1 10.0.0.8", s.Pods[0].Status.PodIP, s.Pods[1].Status.PodIP)
	}
	if s, err = l.Load(dir); err != nil || s.Pods[0].Status.PodIP != "10.0.0.7" {
		t.Fatalf("full Load after LoadChanged: %v", err)
	}
}

// describe renders a snapshot's pod and service names in order, then the pods' IPs
// (sorted: two objects with one name may come in either order).
func describe(s *Snapshot) string {
	var b strings.Builder
	var ips []string
	for _, p := range s.Pods {
		b.WriteString(p.Namespace + "/" + p.Name + " ")
		ips = append(ips, p.Name+"="+p.Status.PodIP)
	}
	slices.Sort(ips)
	b.WriteString(strings.Join(ips, " ") + " ")
	for _, svc := range s.Services {
		b.WriteString("svc:" + svc.Namespace + "/" + svc.Name + " ")
	}
	return b.String()
}
