package kubefile

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher loads a config directory and reloads it when files in it change.
type Watcher struct {
	// Dir is the directory to read.
	Dir string
	// OnChange receives every successfully loaded snapshot: the first one when Run
	// starts, then one per burst of file changes. A directory that fails to load is
	// logged and skipped; the previous snapshot stays in force (fail closed: nothing
	// half-parsed is ever delivered).
	OnChange func(*Snapshot)
	// Debounce is the window that groups file events into one reload: it opens at the
	// first event after a reload and is not extended by later events, so continuous
	// changes still reload once per window. 0 means DefaultDebounce.
	Debounce time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultDebounce is the Watcher's default reload window: long enough to gather the
// events of one editor or tool write, short enough to keep event-to-push low (F-CP-4).
const DefaultDebounce = 20 * time.Millisecond

// Run loads the directory, then watches it until ctx ends. It returns an error if the
// first load or the watch setup fails. Reloads read only the files named by the
// window's events and parse only their changed documents (Loader.LoadChanged), so
// objects in unchanged files are the same pointers in successive snapshots; after a
// watch error (events may have been lost, e.g. a queue overflow) or a failed reload,
// the next reload reads every file.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config dir: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(w.Dir); err != nil {
		return fmt.Errorf("watch config dir: %w", err)
	}
	var loader Loader
	snap, err := loader.Load(w.Dir)
	if err != nil {
		return err
	}
	w.OnChange(snap)
	pending := false
	changed := map[string]bool{} // base names of files with events this window
	full := false                // read every file on the next reload

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			log.Debug("config dir event", "event", ev.String())
			changed[filepath.Base(ev.Name)] = true
			if !pending {
				pending = true
				timer.Reset(debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			log.Warn("config dir watch error; the next reload reads every file", "err", err)
			full = true
			if !pending {
				pending = true
				timer.Reset(debounce)
			}
		case <-timer.C:
			pending = false
			var snap *Snapshot
			if full {
				snap, err = loader.Load(w.Dir)
			} else {
				snap, err = loader.LoadChanged(w.Dir, changed)
			}
			clear(changed)
			full = false
			if err != nil {
				// The failed files' changes were not taken: read everything next time.
				full = true
				log.Error("config dir reload failed; keeping previous config", "err", err)
				continue
			}
			w.OnChange(snap)
		}
	}
}
