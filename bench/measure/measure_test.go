package measure

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIperf3(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    Throughput
		wantErr error
	}{
		{name: "single stream", data: readSample(t, "iperf3_single.json"),
			want: Throughput{BitsPerSecond: 20125287161.69604, Bytes: 2516189184, Seconds: 1.00021, Streams: 1}},
		{name: "parallel", data: readSample(t, "iperf3_parallel.json"),
			want: Throughput{BitsPerSecond: 19866133442.6541, Bytes: 2483552256, Seconds: 1.000115, Streams: 2}},
		{name: "refused", data: readSample(t, "iperf3_error.json"), wantErr: ErrToolFailed},
		{name: "empty end", data: []byte(`{"end":{}}`)},
		{name: "not json", data: []byte("iperf3: error")},
		{name: "zero seconds", data: []byte(`{"end":{"sum_received":{"seconds":0,"bytes":1,"bits_per_second":1}}}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIperf3(tc.data)
			if tc.want == (Throughput{}) {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if g := (Throughput{BitsPerSecond: 54e9}).Gbps(); g != 54 {
		t.Errorf("Gbps = %v, want 54", g)
	}
}

func TestParseFortio(t *testing.T) {
	us := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	tests := []struct {
		name      string
		file      string
		requests  int64
		errs      int64
		sockets   int64
		duration  time.Duration
		p50, p99  time.Duration
		wantErr   error
		connsPerS float64
	}{
		{name: "latency run", file: "fortio_latency.json", requests: 100, sockets: 2, duration: 1010928174,
			p50: us(0.00030208333333333335), p99: us(0.0014000000000000002), connsPerS: 2 / 1.010928174},
		{name: "connection rate run", file: "fortio_connrate.json", requests: 5998, sockets: 6000, duration: 1000165209,
			p50: us(0.00024526315789473685), p99: us(0.0012633684210526335), connsPerS: 6000 / 1.000165209},
		{name: "all refused", file: "fortio_refused.json", requests: 3, errs: 3, sockets: 3, duration: 301061172,
			p50: us(0.00035606850000000003), p99: us(0.00040560897000000004), wantErr: ErrToolFailed, connsPerS: 3 / 0.301061172},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFortio(readSample(t, tc.file))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got.Requests != tc.requests || got.Errors != tc.errs || got.Sockets != tc.sockets || got.Duration != tc.duration {
				t.Fatalf("got %+v", got)
			}
			if p, ok := got.Percentile(50); !ok || p != tc.p50 {
				t.Errorf("p50 = %v, %v, want %v", p, ok, tc.p50)
			}
			if p, ok := got.Percentile(99); !ok || p != tc.p99 {
				t.Errorf("p99 = %v, %v, want %v", p, ok, tc.p99)
			}
			if _, ok := got.Percentile(12.5); ok {
				t.Error("reported a percentile fortio did not compute")
			}
			if c := got.ConnsPerSecond(); math.Abs(c-tc.connsPerS) > 1e-6 {
				t.Errorf("ConnsPerSecond = %v, want %v", c, tc.connsPerS)
			}
		})
	}
}

func TestParseFortioRejects(t *testing.T) {
	tests := []struct{ name, data string }{
		{"not json", "Fortio 1.68.2 running"},
		{"grpc run", `{"RunType":"GRPC Ping","ActualDuration":1,"DurationHistogram":{"Count":1}}`},
		{"no histogram", `{"RunType":"HTTP","ActualDuration":1}`},
		{"no duration", `{"RunType":"HTTP","DurationHistogram":{"Count":1}}`},
		{"bad percentile", `{"RunType":"HTTP","ActualDuration":1,"DurationHistogram":{"Count":1,"Percentiles":[{"Percentile":150,"Value":1}]}}`},
		{"only 5xx", `{"RunType":"HTTP","ActualDuration":1,"DurationHistogram":{"Count":2},"RetCodes":{"503":2}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := ParseFortio([]byte(tc.data)); err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
		})
	}
	h, err := ParseFortio([]byte(`{"RunType":"HTTP","ActualDuration":1000000000,"DurationHistogram":{"Count":4},"RetCodes":{"200":3,"503":1}}`))
	if err != nil || h.Errors != 1 || h.ErrorShare() != 0.25 {
		t.Fatalf("non-2xx codes: got %+v, %v; want 1 error of 4", h, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{name: "recorded", stat: string(readSample(t, "proc_stat.txt")), want: (147 + 783) * 10 * time.Millisecond, ok: true},
		{name: "command with spaces and parens", stat: "42 (a) b (c)) S 1 42 42 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 1 2 3", want: 3 * time.Second, ok: true},
		{name: "truncated", stat: "42 (x) S 1 2 3"},
		{name: "no command", stat: "42 x S 1 2 3 4 5 6 7 8 9 10 11 12 13"},
		{name: "negative", stat: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 -5 50 0"},
		{name: "not a number", stat: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 ab 50 0"},
		{name: "overflow", stat: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 9223372036854775807 50 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tc.stat))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("got %v, %v; want %v (ok=%v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseStatusBytes(t *testing.T) {
	tests := []struct {
		name   string
		status string
		field  string
		want   int64
		ok     bool
	}{
		{name: "recorded rss", status: string(readSample(t, "proc_status.txt")), field: "VmRSS", want: 1688 * 1024, ok: true},
		{name: "recorded hwm", status: string(readSample(t, "proc_status.txt")), field: "VmHWM", want: 1688 * 1024, ok: true},
		{name: "minimal", status: "Name:\tz\nVmHWM:\t  40960 kB\nVmRSS:\t  20480 kB\n", field: "VmRSS", want: 20 << 20, ok: true},
		{name: "kernel thread", status: "Name:\tkthreadd\nState:\tS\n", field: "VmRSS"},
		{name: "bad unit", status: "VmRSS:\t100 MB\n", field: "VmRSS"},
		{name: "bad number", status: "VmRSS:\tx kB\n", field: "VmRSS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatusBytes([]byte(tc.status), tc.field)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("got %v, %v; want %v (ok=%v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS || s.CPU < 0 {
		t.Fatalf("implausible sample %+v", s)
	}
	later := ProcSample{At: s.At.Add(2 * time.Second), CPU: s.CPU + time.Second}
	if c := Cores(s, later); c != 0.5 {
		t.Fatalf("Cores = %v, want 0.5", c)
	}
	if c := Cores(s, s); c != 0 {
		t.Fatalf("Cores over no time = %v, want 0", c)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	}
	for _, tc := range tests {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if in[0] != tc.in[0] {
			t.Errorf("Median modified its input")
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func FuzzParseIperf3(f *testing.F) {
	for _, n := range []string{"iperf3_single.json", "iperf3_parallel.json", "iperf3_error.json"} {
		f.Add(readSample(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tp, err := ParseIperf3(data); err == nil && (tp.Seconds <= 0 || tp.BitsPerSecond < 0) {
			t.Fatalf("accepted implausible %+v", tp)
		}
	})
}

func FuzzParseFortio(f *testing.F) {
	for _, n := range []string{"fortio_latency.json", "fortio_connrate.json", "fortio_refused.json"} {
		f.Add(readSample(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := ParseFortio(data); err == nil && (h.Duration <= 0 || h.Errors > h.Requests && h.Requests > 0) {
			t.Fatalf("accepted implausible %+v", h)
		}
	})
}

func FuzzParseProc(f *testing.F) {
	f.Add(readSample(f, "proc_stat.txt"), readSample(f, "proc_status.txt"))
	f.Fuzz(func(t *testing.T, stat, status []byte) {
		if d, err := ParseStatCPU(stat); err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
		if n, err := ParseStatusBytes(status, "VmRSS"); err == nil && n < 0 {
			t.Fatalf("negative RSS %v", n)
		}
	})
}

func TestCounterSum(t *testing.T) {
	text := string(readSample(t, "ztunnel_metrics.txt"))
	const opened = "istio_tcp_connections_opened_total"
	tests := []struct {
		name   string
		metric string
		match  map[string]string
		want   float64
	}{
		{"all series", opened, nil, 207},
		{"mTLS into l4", opened, map[string]string{"reporter": "destination", "connection_security_policy": "mutual_tls", "destination_workload_namespace": "l4"}, 204},
		{"no match", opened, map[string]string{"destination_workload_namespace": "direct"}, 0},
		{"absent family", "istio_tcp_connections_closed_total", nil, 0},
		{"other family", "istio_tcp_sent_bytes_total", nil, 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CounterSum(text, tc.metric, tc.match)
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := CounterSum("istio_tcp_connections_opened_total{a=\"b\" 1\n", opened, nil); err == nil {
		t.Error("malformed text parsed")
	}
}
