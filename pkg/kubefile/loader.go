package kubefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
)

// Loader loads a config directory as Load does, but remembers each file's content and
// objects and reuses the objects, the very same pointers, while the file's content is
// unchanged; within a changed file, each YAML document whose text is unchanged keeps
// its objects too. A reload after one document changed therefore parses only that
// document, and consumers that memoise by object identity (istiod-lite's
// model.Builder) recompute only what it holds. Files are compared by content, not by
// size and modification time, which can stay equal across a rewrite (coarse
// timestamps, reused inodes). When a reload only replaces objects by objects of the
// same kinds and names, the previous sorted lists are patched instead of sorted again
// (F-CP-4: 10,000 pods). The zero Loader is ready; it is not safe for concurrent use.
type Loader struct {
	files map[string]loadedFile
	last  *Snapshot // the previous snapshot, sorted
}

// loadedFile is one file's content when parsed, the objects parsed from it, and its
// documents' objects by document text.
type loadedFile struct {
	data []byte
	objs *Snapshot
	docs map[string]*Snapshot
}

// Load reads dir like the package's Load: every *.yaml, *.yml and *.json file directly
// in it, all or nothing (a file that fails to parse fails the load, and the previous
// state of every file stays remembered). The returned snapshot is sorted and new; only
// the objects in it are shared with earlier snapshots.
func (l *Loader) Load(dir string) (*Snapshot, error) {
	return l.load(dir, nil)
}

// LoadChanged is Load for a caller that knows which files may have changed since the
// previous load (file-system events): only the named files (base names) and files new
// to the directory are read; the others keep their remembered objects without being
// read. Files no longer in the directory are dropped. The first load reads everything.
func (l *Loader) LoadChanged(dir string, changed map[string]bool) (*Snapshot, error) {
	if changed == nil {
		changed = map[string]bool{}
	}
	return l.load(dir, changed)
}

// load reads dir; changed nil means every file may have changed.
func (l *Loader) load(dir string, changed map[string]bool) (*Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load config dir: %w", err)
	}
	files := make(map[string]loadedFile, len(entries))
	var olds, news []*Snapshot // objects of the files that changed
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !isManifest(name) {
			continue
		}
		path := filepath.Join(dir, name)
		prev, had := l.files[path]
		if had && changed != nil && !changed[name] {
			files[path] = prev
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("load config dir: %w", err)
		}
		if had && bytes.Equal(prev.data, data) {
			files[path] = prev
			continue
		}
		f, err := parseFile(data, prev.docs)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		files[path] = f
		if had {
			olds, news = append(olds, prev.objs), append(news, f.objs)
		} else {
			olds, news = append(olds, &Snapshot{}), append(news, f.objs)
		}
	}
	samePaths := len(files) == len(l.files)
	for path := range l.files {
		if _, ok := files[path]; !ok {
			samePaths = false
			break
		}
	}
	var snap *Snapshot
	if l.last != nil && samePaths {
		snap, _ = patchSorted(l.last, olds, news)
	}
	if snap == nil {
		snap = &Snapshot{}
		for _, e := range entries {
			if f, ok := files[filepath.Join(dir, e.Name())]; ok {
				snap.merge(f.objs)
			}
		}
		snap.Sort()
	}
	l.files, l.last = files, snap
	return snap.clone(), nil
}

// parseFile parses a file's documents, reusing the objects of documents whose text is
// in prev.
func parseFile(data []byte, prev map[string]*Snapshot) (loadedFile, error) {
	f := loadedFile{data: data, objs: &Snapshot{}, docs: map[string]*Snapshot{}}
	r := yamlutil.NewYAMLReader(bufioReader(data))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return loadedFile{}, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		key := string(doc)
		objs, ok := prev[key]
		if !ok {
			objs = &Snapshot{}
			if err := objs.addDocument(doc); err != nil {
				return loadedFile{}, fmt.Errorf("document %d: %w", i, err)
			}
		}
		f.docs[key] = objs
		f.objs.merge(objs)
	}
}

// merge appends o's objects to s.
func (s *Snapshot) merge(o *Snapshot) {
	s.Namespaces = append(s.Namespaces, o.Namespaces...)
	s.Pods = append(s.Pods, o.Pods...)
	s.Services = append(s.Services, o.Services...)
	s.ServiceAccounts = append(s.ServiceAccounts, o.ServiceAccounts...)
	s.Nodes = append(s.Nodes, o.Nodes...)
	s.EndpointSlices = append(s.EndpointSlices, o.EndpointSlices...)
	s.AuthorizationPolicies = append(s.AuthorizationPolicies, o.AuthorizationPolicies...)
	s.PeerAuthentications = append(s.PeerAuthentications, o.PeerAuthentications...)
	s.Gateways = append(s.Gateways, o.Gateways...)
	s.HTTPRoutes = append(s.HTTPRoutes, o.HTTPRoutes...)
	s.VirtualServices = append(s.VirtualServices, o.VirtualServices...)
	s.DestinationRules = append(s.DestinationRules, o.DestinationRules...)
}

// clone returns a snapshot with copies of s's lists (the same objects).
func (s *Snapshot) clone() *Snapshot {
	c := &Snapshot{}
	c.merge(s)
	return c
}
