package measure

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// HTTPLoad is the outcome of one fortio HTTP load run.
type HTTPLoad struct {
	Requests    int64         // calls made, failed ones included (warm-up calls excluded)
	Errors      int64         // calls that failed (connection error or non-2xx status)
	Duration    time.Duration // measured run time
	ActualQPS   float64       // requests per second fortio achieved
	Sockets     int64         // TCP connections opened (one per call with -keepalive=false)
	Percentiles map[float64]time.Duration
}

// Percentile returns the latency at percentile p (for example 99 or 99.9) and whether
// the run reported it (fortio reports the percentiles given with -p).
func (h HTTPLoad) Percentile(p float64) (time.Duration, bool) {
	d, ok := h.Percentiles[p]
	return d, ok
}

// ConnsPerSecond is the rate of new TCP connections: Sockets over Duration.
func (h HTTPLoad) ConnsPerSecond() float64 {
	if h.Duration <= 0 {
		return 0
	}
	return float64(h.Sockets) / h.Duration.Seconds()
}

// ErrorShare is Errors over Requests (0 when there were no requests).
func (h HTTPLoad) ErrorShare() float64 {
	if h.Requests == 0 {
		return 0
	}
	return float64(h.Errors) / float64(h.Requests)
}

type fortioHistogram struct {
	Count       int64 `json:"Count"`
	Percentiles []struct {
		Percentile float64 `json:"Percentile"`
		Value      float64 `json:"Value"` // seconds
	} `json:"Percentiles"`
}

type fortioReport struct {
	RunType                 string           `json:"RunType"`
	ActualQPS               float64          `json:"ActualQPS"`
	ActualDuration          int64            `json:"ActualDuration"` // nanoseconds
	DurationHistogram       *fortioHistogram `json:"DurationHistogram"`
	ErrorsDurationHistogram *fortioHistogram `json:"ErrorsDurationHistogram"`
	RetCodes                map[string]int64 `json:"RetCodes"`
	SocketCount             int64            `json:"SocketCount"`
}

// ParseFortio reads the JSON report of `fortio load -json -` (fortio 1.6x, HTTP runs).
// Latencies come from DurationHistogram (seconds, converted to durations); errors are
// the ErrorsDurationHistogram count, or the calls whose RetCodes are not 2xx when that
// is larger. Malformed JSON, a non-HTTP run or a report without a histogram is an
// error; a run whose every call failed yields ErrToolFailed.
func ParseFortio(data []byte) (HTTPLoad, error) {
	var r fortioReport
	if err := json.Unmarshal(data, &r); err != nil {
		return HTTPLoad{}, fmt.Errorf("parse fortio report: %w", err)
	}
	if r.RunType != "HTTP" {
		return HTTPLoad{}, fmt.Errorf("parse fortio report: run type %q, want HTTP", r.RunType)
	}
	if r.DurationHistogram == nil || r.ActualDuration <= 0 {
		return HTTPLoad{}, errors.New("parse fortio report: no duration histogram")
	}
	h := HTTPLoad{
		Requests: r.DurationHistogram.Count, Duration: time.Duration(r.ActualDuration),
		ActualQPS: r.ActualQPS, Sockets: r.SocketCount, Percentiles: map[float64]time.Duration{},
	}
	if r.ErrorsDurationHistogram != nil {
		h.Errors = r.ErrorsDurationHistogram.Count
	}
	var bad int64
	for code, n := range r.RetCodes {
		if len(code) != 3 || code[0] != '2' {
			bad += n
		}
	}
	h.Errors = max(h.Errors, bad)
	for _, p := range r.DurationHistogram.Percentiles {
		if p.Value < 0 || p.Percentile < 0 || p.Percentile > 100 {
			return HTTPLoad{}, fmt.Errorf("parse fortio report: bad percentile %v = %v", p.Percentile, p.Value)
		}
		h.Percentiles[p.Percentile] = time.Duration(p.Value * float64(time.Second))
	}
	if h.Requests > 0 && h.Errors >= h.Requests {
		return h, fmt.Errorf("parse fortio report: %w: all %d calls failed", ErrToolFailed, h.Requests)
	}
	return h, nil
}
