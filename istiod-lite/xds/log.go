package xds

import (
	"context"
	"fmt"
	"log/slog"
)

// cacheLogger adapts slog to go-control-plane's printf-style logger. The cache's Info
// messages (one per watch opened) are logged at Debug.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) logf(level slog.Level, format string, args []any) {
	if c.l.Enabled(context.Background(), level) {
		c.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (c cacheLogger) Debugf(format string, args ...any) { c.logf(slog.LevelDebug, format, args) }
func (c cacheLogger) Infof(format string, args ...any)  { c.logf(slog.LevelDebug, format, args) }
func (c cacheLogger) Warnf(format string, args ...any)  { c.logf(slog.LevelWarn, format, args) }
func (c cacheLogger) Errorf(format string, args ...any) { c.logf(slog.LevelError, format, args) }
