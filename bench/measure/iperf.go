package measure

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrToolFailed is returned by the parsers when the tool's own report says the run
// failed (iperf3's "error" field; fortio's error count above the allowed share).
var ErrToolFailed = errors.New("load tool reported a failure")

// Throughput is the outcome of one iperf3 TCP run, as the receiver counted it.
type Throughput struct {
	BitsPerSecond float64 // received payload bits per second, summed over streams
	Bytes         int64   // received payload bytes, summed over streams
	Seconds       float64 // length of the measured interval
	Streams       int     // parallel streams (iperf3 -P)
}

// Gbps is BitsPerSecond in Gbit/s (10^9 bits per second, as iperf3 prints).
func (t Throughput) Gbps() float64 { return t.BitsPerSecond / 1e9 }

type iperfReport struct {
	Start struct {
		TestStart struct {
			NumStreams int `json:"num_streams"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		SumReceived *struct {
			Seconds       float64 `json:"seconds"`
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// ParseIperf3 reads the JSON report of an iperf3 client (`iperf3 -c … -J`, version 3.x)
// and returns the receiver-side sum. A report carrying iperf3's "error" field (iperf3
// exits 0 in JSON mode even then) yields ErrToolFailed; malformed or incomplete JSON
// yields a decode error.
func ParseIperf3(data []byte) (Throughput, error) {
	var r iperfReport
	if err := json.Unmarshal(data, &r); err != nil {
		return Throughput{}, fmt.Errorf("parse iperf3 report: %w", err)
	}
	if r.Error != "" {
		return Throughput{}, fmt.Errorf("parse iperf3 report: %w: %s", ErrToolFailed, r.Error)
	}
	s := r.End.SumReceived
	if s == nil {
		return Throughput{}, errors.New("parse iperf3 report: no end.sum_received")
	}
	if s.Seconds <= 0 || s.BitsPerSecond < 0 || s.Bytes < 0 {
		return Throughput{}, fmt.Errorf("parse iperf3 report: implausible sum (%.3f s, %d bytes, %.0f bit/s)", s.Seconds, s.Bytes, s.BitsPerSecond)
	}
	return Throughput{BitsPerSecond: s.BitsPerSecond, Bytes: s.Bytes, Seconds: s.Seconds, Streams: r.Start.TestStart.NumStreams}, nil
}
