// Package accesslog writes HTTP access logs as configured by the HTTP
// connection manager's access_log with the envoy.access_loggers.stdout
// logger and a json_format log format: one JSON object per request per line,
// each key's value given by Envoy command operators (%REQ(:METHOD)%, ...).
package accesslog

import (
	"io"
	"sync"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// ErrUnsupported is wrapped by Compile when the configuration sets a field or
// uses a command operator the engine does not implement; the error names it.
// It is protoshape.ErrUnsupported, shared by every waypoint package.
var ErrUnsupported = protoshape.ErrUnsupported

// Entry holds what is known about one finished request. Path is the path as
// forwarded, OriginalPath the client's path before a rewrite ("" when not
// rewritten). Protocol is "HTTP/1.1" or "HTTP/2"; Duration is measured from
// Start to the last byte sent and logged in whole milliseconds. As Envoy's
// json_format: empty strings are logged as null (RESPONSE_FLAGS as "-"),
// numbers as JSON numbers (a ResponseCode of 0 means no response was sent).
type Entry struct {
	Start           time.Time
	Method          string
	Path            string
	OriginalPath    string
	Protocol        string
	Authority       string
	UserAgent       string
	RequestID       string
	ResponseCode    int
	ResponseFlags   string
	BytesReceived   int64
	BytesSent       int64
	Duration        time.Duration
	UpstreamHost    string
	UpstreamCluster string
	PeerPrincipal   string
	RouteName       string
}

// Logger writes entries to its writer with every configured format. Safe for
// concurrent use. A nil *Logger logs nothing.
type Logger struct {
	mu      sync.Mutex
	w       io.Writer
	formats []*format
}

// Compile validates logs (HCM access_log entries) and returns a Logger that
// writes to w (os.Stdout in the engine). Each entry must be the
// envoy.access_loggers.stdout logger with a json_format of string values made
// of supported command operators; anything else is rejected with an error
// wrapping ErrUnsupported. An empty logs yields a nil Logger.
func Compile(logs []*accesslogv3.AccessLog, w io.Writer) (*Logger, error) {
	return compile(logs, w)
}

// Log writes e as one JSON line per configured format, all lines in one Write.
// Write errors are dropped, as Envoy drops log lines it cannot flush. Rendering
// uses pooled buffers and no reflection: it allocates nothing in the steady state.
func (l *Logger) Log(e *Entry) {
	if l == nil || e == nil {
		return
	}
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	for _, f := range l.formats {
		b = f.appendLine(b, e)
	}
	l.mu.Lock()
	_, _ = l.w.Write(b)
	l.mu.Unlock()
	if cap(b) <= maxPooledLine {
		*bp = b
		linePool.Put(bp)
	}
}

// maxPooledLine bounds the line buffers kept for reuse (a huge header must not pin
// memory).
const maxPooledLine = 16 << 10

var linePool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}
