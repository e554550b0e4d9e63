package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// stateFile is the name of the registered-pods file in Config.StateDir.
const stateFile = "pods.json"

// stateDoc is the on-disk shape of the state file.
type stateDoc struct {
	Pods []*pod `json:"pods"`
}

// saveLocked writes the registered pods atomically (temp file + rename). Callers hold mu.
func (a *Agent) saveLocked() error {
	doc := stateDoc{Pods: make([]*pod, 0, len(a.pods))}
	for _, p := range a.pods {
		doc.Pods = append(doc.Pods, p)
	}
	sort.Slice(doc.Pods, func(i, j int) bool { return doc.Pods[i].UID < doc.Pods[j].UID })
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp, err := os.CreateTemp(a.cfg.StateDir, stateFile+".tmp*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(a.cfg.StateDir, stateFile)); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// loadState reads the state file; a missing file is an empty state. A corrupt file is
// an error: silently forgetting pods would leave their redirection orphaned.
func loadState(dir string) (map[string]*pod, error) {
	pods := map[string]*pod{}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return pods, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("load state %s: %w", filepath.Join(dir, stateFile), err)
	}
	for _, p := range doc.Pods {
		if p == nil || p.UID == "" {
			return nil, fmt.Errorf("load state: pod without uid")
		}
		pods[p.UID] = p
	}
	return pods, nil
}

// recoverState rebuilds the registered pods after a restart: it loads the state file,
// removes redirection whose pod is unknown (orphaned pins), forgets pods whose netns is
// gone (a DEL was missed) and marks the rest for re-enrolment, which the first
// reconcile performs idempotently (redirection kept, ztunnel told again).
func (a *Agent) recoverState() error {
	pods, err := loadState(a.cfg.StateDir)
	if err != nil {
		return err
	}
	pinned, err := a.cfg.Redirector.Enrolled()
	if err != nil {
		return fmt.Errorf("recover state: list enrolled pods: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, uid := range pinned {
		if p := pods[uid]; p != nil {
			p.pinned = true
			continue
		}
		a.log.Info("removing orphaned redirection", "uid", uid)
		if err := a.cfg.Redirector.Unenrol(uid); err != nil {
			a.log.Warn("remove orphaned redirection failed", "uid", uid, "err", err)
		}
	}
	for uid, p := range pods {
		p.Enrolled = false // the ZDS server of this process does not know it yet
		if _, err := os.Stat(p.Netns); err != nil {
			a.log.Info("forgetting pod whose netns is gone", "uid", uid, "netns", p.Netns)
			if p.pinned {
				if err := a.cfg.Redirector.Unenrol(uid); err != nil {
					a.log.Warn("remove redirection of gone pod failed", "uid", uid, "err", err)
				}
			}
			delete(pods, uid)
		}
	}
	a.pods = pods
	a.log.Info("state recovered", "pods", len(pods), "pinned", len(pinned))
	return a.saveLocked()
}
