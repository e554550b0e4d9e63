package kubefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Loader loads a config directory as Load does, but remembers each file's content and
// objects and reuses the objects, the very same pointers, while the file's content is
// unchanged. A reload after one file changed therefore parses only that file, and
// consumers that memoise by object identity (istiod-lite's model.Builder) recompute
// only what that file holds. Files are compared by content, not by size and
// modification time, which can stay equal across a rewrite (coarse timestamps, reused
// inodes). The zero Loader is ready; it is not safe for concurrent use.
type Loader struct {
	files map[string]loadedFile
}

// loadedFile is one file's content when parsed and the objects parsed from it.
type loadedFile struct {
	data []byte
	objs *Snapshot
}

// Load reads dir like the package's Load: every *.yaml, *.yml and *.json file directly
// in it, all or nothing (a file that fails to parse fails the load, and the previous
// state of every file stays remembered). The returned snapshot is sorted and new; only
// the objects in it are shared with earlier snapshots.
func (l *Loader) Load(dir string) (*Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load config dir: %w", err)
	}
	files := make(map[string]loadedFile, len(entries))
	snap := &Snapshot{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !isManifest(name) {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("load config dir: %w", err)
		}
		f := loadedFile{data: data}
		if prev, ok := l.files[path]; ok && bytes.Equal(prev.data, data) {
			f.objs = prev.objs
		} else {
			f.objs = &Snapshot{}
			if err := f.objs.add(data); err != nil {
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
		}
		files[path] = f
		snap.merge(f.objs)
	}
	l.files = files
	snap.Sort()
	return snap, nil
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
