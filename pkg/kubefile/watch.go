package kubefile

import (
	"context"
	"fmt"
	"log/slog"
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
	// Debounce groups bursts of file events; 0 means 50ms.
	Debounce time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Run loads the directory, then watches it until ctx ends. It returns an error if the
// first load or the watch setup fails.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	debounce := w.Debounce
	if debounce == 0 {
		debounce = 50 * time.Millisecond
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config dir: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(w.Dir); err != nil {
		return fmt.Errorf("watch config dir: %w", err)
	}
	snap, err := Load(w.Dir)
	if err != nil {
		return err
	}
	w.OnChange(snap)

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
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			log.Warn("config dir watch error", "err", err)
		case <-timer.C:
			snap, err := Load(w.Dir)
			if err != nil {
				log.Error("config dir reload failed; keeping previous config", "err", err)
				continue
			}
			w.OnChange(snap)
		}
	}
}
