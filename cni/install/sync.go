package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// sync makes the installation right once: binary in place, Ambit entry last in the
// primary config and in no other.
func (in *Installer) sync() error {
	if err := in.installBinary(); err != nil {
		return err
	}
	names, err := confFiles(in.ConfDir)
	if err != nil {
		return fmt.Errorf("cni install: %w", err)
	}
	primary, data, skipped := in.primary(names)
	if primary != "" {
		in.warnSkipped(skipped)
	}
	if primary == "" {
		return errors.Join(append([]error{fmt.Errorf("%w in %s", ErrNoConfig, in.ConfDir)}, skipped...)...)
	}
	written, err := in.insertInto(primary, data)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		path := filepath.Join(in.ConfDir, name)
		if path != written && strings.HasSuffix(name, ".conflist") {
			if err := in.removeFrom(path); err != nil && !errors.Is(err, ErrInvalidConfig) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// primary returns the first config (path and content) that parses, and why each
// earlier one was skipped.
func (in *Installer) primary(names []string) (string, []byte, []error) {
	var skipped []error
	for _, name := range names {
		path := filepath.Join(in.ConfDir, name)
		data, err := os.ReadFile(path)
		if err == nil {
			if strings.HasSuffix(name, ".conf") {
				_, err = convertConf(data)
			} else {
				_, _, err = parseConflist(data)
			}
		}
		if err == nil {
			return path, data, skipped
		}
		skipped = append(skipped, fmt.Errorf("skip %s: %w", path, err))
	}
	return "", nil, skipped
}

// warnSkipped logs the configs passed over for the primary, each distinct reason once.
func (in *Installer) warnSkipped(skipped []error) {
	seen := make(map[string]bool, len(skipped))
	for _, err := range skipped {
		msg := err.Error()
		seen[msg] = true
		if !in.warned[msg] {
			in.log().Warn("CNI network config not usable; skipped", "err", err)
		}
	}
	in.warned = seen
}

// insertInto puts the Ambit entry into the primary config at path and returns the
// file it wrote or checked (a .conf becomes <name>.conflist and the .conf goes).
func (in *Installer) insertInto(path string, data []byte) (string, error) {
	target := path
	if strings.HasSuffix(path, ".conf") {
		converted, err := convertConf(data)
		if err != nil {
			return "", fmt.Errorf("cni install: %s: %w", path, err)
		}
		data, target = converted, path+"list"
	}
	out, changed, err := insertEntry(data, entry(in.AgentSocket))
	if err != nil {
		return "", fmt.Errorf("cni install: %s: %w", path, err)
	}
	if changed || target != path {
		if err := writeAtomic(target, out, fileMode(path, 0o644)); err != nil {
			return "", err
		}
		in.log().Info("ambit-cni added to the CNI config", "file", target)
	}
	if target != path {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("cni install: remove converted %s: %w", path, err)
		}
		in.log().Info("converted CNI config to a conflist", "from", path, "to", target)
	}
	return target, nil
}

// removeFrom takes the Ambit entry out of the conflist at path, if it has one.
func (in *Installer) removeFrom(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cni uninstall: %w", err)
	}
	out, changed, err := removeEntry(data)
	if err != nil {
		return fmt.Errorf("cni uninstall: %s: %w", path, err)
	}
	if !changed {
		return nil
	}
	if err := writeAtomic(path, out, fileMode(path, 0o644)); err != nil {
		return err
	}
	in.log().Info("ambit-cni removed from the CNI config", "file", path)
	return nil
}

// uninstall removes the Ambit entry from every conflist and the copied binary.
func (in *Installer) uninstall() error {
	names, err := confFiles(in.ConfDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cni uninstall: %w", err)
	}
	var errs []error
	for _, name := range names {
		if strings.HasSuffix(name, ".conflist") {
			if err := in.removeFrom(filepath.Join(in.ConfDir, name)); err != nil && !errors.Is(err, ErrInvalidConfig) {
				errs = append(errs, err)
			}
		}
	}
	if in.PluginPath != "" {
		if err := os.Remove(filepath.Join(in.BinDir, PluginType)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cni uninstall: %w", err))
		}
	}
	return errors.Join(errs...)
}

// installBinary copies PluginPath to BinDir/ambit-cni unless it is already there with
// the same content.
func (in *Installer) installBinary() error {
	if in.PluginPath == "" {
		return nil
	}
	src, err := os.ReadFile(in.PluginPath)
	if err != nil {
		return fmt.Errorf("cni install: read plugin: %w", err)
	}
	if err := os.MkdirAll(in.BinDir, 0o755); err != nil {
		return fmt.Errorf("cni install: %w", err)
	}
	dst := filepath.Join(in.BinDir, PluginType)
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, src) {
		return nil
	}
	if err := writeAtomic(dst, src, 0o755); err != nil {
		return err
	}
	in.log().Info("ambit-cni plugin installed", "path", dst)
	return nil
}

// fileMode returns path's permission bits, or def when it cannot be read.
func fileMode(path string, def fs.FileMode) fs.FileMode {
	if st, err := os.Stat(path); err == nil {
		return st.Mode().Perm()
	}
	return def
}

// writeAtomic writes data to path through a temporary file in the same directory and a
// rename, so readers (the container runtime) see the old or the new file, never a part.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+PluginType+"-*.tmp")
	if err != nil {
		return fmt.Errorf("cni install: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cni install: write %s: %w", path, err)
	}
	return nil
}
