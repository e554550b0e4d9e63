// Package install keeps the ambit-cni plugin installed on a node (F-ENROL-2), as Istio's
// install-cni does for istio-cni in chained mode: it copies the plugin binary into the
// CNI bin dir, appends {"type":"ambit-cni","agentSocket":...} as the last plugin of the
// node's primary CNI network config, puts it back whenever another writer rewrites that
// file, and takes both out again when it stops.
//
// The primary config is the first file in lexical order among the *.conf and
// *.conflist files of the conf dir that parse as a CNI config (the one a container
// runtime uses); a .conf is converted to a .conflist first. Rewrites keep every other
// plugin and field byte-for-byte (only whitespace is re-indented) and key order.
package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrNoConfig means the conf dir holds no usable CNI network config yet; the installer
// waits for one.
var ErrNoConfig = errors.New("no CNI network config")

// DefaultRetryInterval is how long a failed install waits for a retry when no file event
// comes first.
const DefaultRetryInterval = 5 * time.Second

// settle is how long the installer lets a burst of file events settle before it reads
// the files (writers that truncate then write produce several).
const settle = 20 * time.Millisecond

// Installer installs the plugin; build it as a literal and call Run.
type Installer struct {
	// ConfDir is the CNI network config directory (--cni-conf-dir, /etc/cni/net.d).
	// Required; created when missing.
	ConfDir string
	// BinDir is the CNI plugin directory (--cni-bin-dir, /opt/cni/bin). Required with
	// PluginPath.
	BinDir string
	// PluginPath is the ambit-cni binary to copy to BinDir/ambit-cni (--cni-plugin-path);
	// empty means the binary is managed elsewhere and neither copied nor removed.
	PluginPath string
	// AgentSocket is the node agent's CNI event socket put in the plugin entry
	// (--cni-socket). Required, absolute.
	AgentSocket string
	// Logger may be nil (slog.Default()).
	Logger *slog.Logger
	// RetryInterval overrides DefaultRetryInterval (tests).
	RetryInterval time.Duration

	warned map[string]bool // skipped-config messages already logged; owned by Run
}

// Run installs, then keeps the installation in place (fsnotify on ConfDir and BinDir)
// until ctx ends, and then uninstalls: removes the Ambit entry from every conflist in
// ConfDir and the copied binary. Failures while running (no config yet, a malformed
// file, a write error) are logged and retried on the next file event or after
// RetryInterval; Run returns an error only for a bad configuration, a failed watch, or
// a failed uninstall.
func (in *Installer) Run(ctx context.Context) error {
	if err := in.validate(); err != nil {
		return err
	}
	log := in.log()
	w, err := in.watch()
	if err != nil {
		return err
	}
	defer w.Close()
	retryEvery := in.RetryInterval
	if retryEvery <= 0 {
		retryEvery = DefaultRetryInterval
	}
	retry := time.NewTimer(retryEvery)
	defer retry.Stop()
	var lastErr string
	for {
		err := in.sync()
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() == lastErr:
			log.Debug("cni install still failing", "err", err)
		case errors.Is(err, ErrNoConfig):
			lastErr = err.Error()
			log.Info("waiting for a CNI network config", "dir", in.ConfDir, "reason", err)
		default:
			lastErr = err.Error()
			log.Error("cni install failed; will retry", "err", err)
		}
		retry.Reset(retryEvery)
		if err := in.wait(ctx, w, retry.C); err != nil {
			return err
		}
		if ctx.Err() != nil {
			if err := in.uninstall(); err != nil {
				return err
			}
			log.Info("ambit-cni uninstalled", "confDir", in.ConfDir)
			return nil
		}
	}
}

func (in *Installer) validate() error {
	switch {
	case in.ConfDir == "":
		return errors.New("cni install: conf dir is required")
	case !filepath.IsAbs(in.AgentSocket):
		return fmt.Errorf("cni install: agent socket must be an absolute path, got %q", in.AgentSocket)
	case in.PluginPath != "" && in.BinDir == "":
		return errors.New("cni install: bin dir is required with a plugin path")
	}
	return nil
}

func (in *Installer) log() *slog.Logger {
	if in.Logger == nil {
		return slog.Default()
	}
	return in.Logger
}

// watch creates the directories and an fsnotify watcher on them.
func (in *Installer) watch() (*fsnotify.Watcher, error) {
	dirs := []string{in.ConfDir}
	if in.PluginPath != "" {
		dirs = append(dirs, in.BinDir)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("cni install: watch: %w", err)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("cni install: %w", err)
		}
		if err := w.Add(d); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("cni install: watch %s: %w", d, err)
		}
	}
	return w, nil
}

// wait blocks until a relevant file event (then lets the burst settle), the retry
// timer, or the end of ctx. It fails only when the watcher closes.
func (in *Installer) wait(ctx context.Context, w *fsnotify.Watcher, retry <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry:
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("cni install: watcher closed")
			}
			in.log().Warn("cni conf dir watch error", "err", err)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("cni install: watcher closed")
			}
			if !in.relevant(ev) {
				continue
			}
			t := time.NewTimer(settle)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			return nil
		}
	}
}

// relevant reports whether ev may change the installation: a CNI config file in
// ConfDir, or the plugin binary in BinDir.
func (in *Installer) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	dir, name := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	if dir == filepath.Clean(in.ConfDir) && isConfName(name) {
		return true
	}
	return in.PluginPath != "" && dir == filepath.Clean(in.BinDir) && name == PluginType
}

func isConfName(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".conflist"))
}

// confFiles lists the CNI config file names of dir in lexical order.
func confFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !isConfName(e.Name()) {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 { // e.g. a ConfigMap mount
			if st, err := os.Stat(filepath.Join(dir, e.Name())); err != nil || !st.Mode().IsRegular() {
				continue
			}
		} else if !e.Type().IsRegular() {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}
