package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambitmesh/ambit/pkg/waypointxds"
)

// istioFormat is the json_format of issue 5, section 2: the one istiod-lite generates.
var istioFormat = waypointxds.AccessLogFormat

func stdoutLog(t testing.TB, format map[string]string) *accesslogv3.AccessLog {
	t.Helper()
	fields := map[string]*structpb.Value{}
	for k, v := range format {
		fields[k] = structpb.NewStringValue(v)
	}
	return withLogger(t, &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{
			JsonFormat: &structpb.Struct{Fields: fields}}}}})
}

func withLogger(t testing.TB, m proto.Message) *accesslogv3.AccessLog {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: StdoutLoggerName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
}

func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

func TestIstioFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := Compile([]*accesslogv3.AccessLog{stdoutLog(t, istioFormat)}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 8, 30, 1, 123_456_789, time.FixedZone("x", 3600))
	l.Log(&Entry{
		Start: start, Method: "GET", Path: "/v2/x", OriginalPath: "/api/x", Protocol: "HTTP/1.1",
		Authority: "svc.ns", UserAgent: "curl/8 <&>", RequestID: "id-1", ResponseCode: 200,
		BytesReceived: 12, BytesSent: 345, Duration: 1500 * time.Microsecond,
		UpstreamCluster: "outbound|80||svc.ns.svc.cluster.local",
		PeerPrincipal:   "spiffe://cluster.local/ns/a/sa/b", RouteName: "default",
	})
	if !bytes.HasSuffix(buf.Bytes(), []byte("}\n")) || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if !strings.Contains(buf.String(), "curl/8 <&>") {
		t.Errorf("HTML characters escaped: %s", buf.String())
	}
	got := decode(t, buf.Bytes())
	want := map[string]any{
		"start_time": "2026-11-22T07:30:01.123Z", "method": "GET", "path": "/api/x", "protocol": "HTTP/1.1",
		"response_code": 200.0, "response_flags": "-", "bytes_received": 12.0, "bytes_sent": 345.0, "duration": 1.0,
		"upstream_host": nil, "upstream_cluster": "outbound|80||svc.ns.svc.cluster.local", "authority": "svc.ns",
		"user_agent": "curl/8 <&>", "request_id": "id-1", "downstream_peer": "spiffe://cluster.local/ns/a/sa/b",
		"route_name": "default",
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("%s = %#v (present %v), want %#v", k, gv, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d keys, want %d", len(got), len(want))
	}
	buf.Reset()
	l.Log(&Entry{Path: "/plain", ResponseFlags: "UF"})
	got = decode(t, buf.Bytes())
	if got["path"] != "/plain" || got["response_flags"] != "UF" || got["start_time"] != nil || got["response_code"] != 0.0 {
		t.Errorf("fallbacks: %v", got)
	}
}

func TestMixedValues(t *testing.T) {
	var buf bytes.Buffer
	l, err := Compile([]*accesslogv3.AccessLog{stdoutLog(t, map[string]string{
		"summary": "%REQ(:METHOD)% %REQ(:PATH):4% -> %RESPONSE_CODE% (%UPSTREAM_HOST%) 100%%",
		"literal": "waypoint",
	})}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(&Entry{Method: "PUT", Path: "/abcdef", ResponseCode: 503})
	got := decode(t, buf.Bytes())
	if got["summary"] != "PUT /abc -> 503 (-) 100%" || got["literal"] != "waypoint" {
		t.Fatalf("got %v", got)
	}
}

func TestCompileRejects(t *testing.T) {
	text := withLogger(t, &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "x"}}}})
	filtered := stdoutLog(t, map[string]string{"a": "b"})
	filtered.Filter = &accesslogv3.AccessLogFilter{}
	stderr := withLogger(t, &streamv3.StderrAccessLog{})
	renamed := stdoutLog(t, map[string]string{"a": "b"})
	renamed.Name = "envoy.access_loggers.file"
	numeric := stdoutLog(t, map[string]string{"a": "b"})
	st := &streamv3.StdoutAccessLog{}
	_ = numeric.GetTypedConfig().UnmarshalTo(st)
	st.GetLogFormat().GetJsonFormat().Fields["n"] = structpb.NewNumberValue(1)
	numeric = withLogger(t, st)
	tests := []struct {
		name        string
		log         *accesslogv3.AccessLog
		want        string
		unsupported bool
	}{
		{name: "unknown operator", log: stdoutLog(t, map[string]string{"a": "%DOWNSTREAM_REMOTE_ADDRESS%"}), want: "DOWNSTREAM_REMOTE_ADDRESS", unsupported: true},
		{name: "unlogged header", log: stdoutLog(t, map[string]string{"a": "%REQ(X-OTHER)%"}), want: "X-OTHER", unsupported: true},
		{name: "other filter state", log: stdoutLog(t, map[string]string{"a": "%FILTER_STATE(other:PLAIN)%"}), want: "FILTER_STATE", unsupported: true},
		{name: "start time format", log: stdoutLog(t, map[string]string{"a": "%START_TIME(%s)%"}), want: "START_TIME", unsupported: true},
		{name: "unterminated", log: stdoutLog(t, map[string]string{"a": "%PROTOCOL"}), want: "unterminated"},
		{name: "bad length", log: stdoutLog(t, map[string]string{"a": "%REQ(:PATH):x%"}), want: "bad length", unsupported: true},
		{name: "text format", log: text, want: "text_format", unsupported: true},
		{name: "filter", log: filtered, want: "filter", unsupported: true},
		{name: "stderr logger", log: stderr, want: "StderrAccessLog", unsupported: true},
		{name: "other name", log: renamed, want: "envoy.access_loggers.file", unsupported: true},
		{name: "number value", log: numeric, want: "number_value", unsupported: true},
		{name: "no typed config", log: &accesslogv3.AccessLog{Name: StdoutLoggerName}, want: "typed_config", unsupported: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]*accesslogv3.AccessLog{tc.log}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Fatalf("ErrUnsupported mismatch: %v", err)
			}
		})
	}
}

func TestNilAndConcurrent(t *testing.T) {
	l, err := Compile(nil, nil)
	if err != nil || l != nil {
		t.Fatalf("Compile(nil) = %v, %v", l, err)
	}
	l.Log(&Entry{})
	var buf syncBuffer
	l, err = Compile([]*accesslogv3.AccessLog{stdoutLog(t, istioFormat)}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				l.Log(&Entry{Method: "GET", Path: "/", ResponseCode: 200})
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, line := range lines {
		decode(t, []byte(line))
	}
}

// syncBuffer is a bytes.Buffer whose reads may race with the logger's writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func FuzzCompile(f *testing.F) {
	f.Add("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):10% %DURATION% %%")
	f.Add("%FILTER_STATE(io.istio.peer_principal:PLAIN)%")
	f.Add("%(")
	f.Fuzz(func(t *testing.T, format string) {
		if !utf8.ValidString(format) {
			return // proto strings are UTF-8
		}
		var buf bytes.Buffer
		l, err := Compile([]*accesslogv3.AccessLog{stdoutLog(t, map[string]string{"k": format})}, &buf)
		if err != nil {
			return
		}
		l.Log(&Entry{Method: "GET", Path: "/é", Duration: time.Second, UpstreamHost: "10.0.0.1:80"})
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("format %q produced invalid JSON %q: %v", format, buf.Bytes(), err)
		}
	})
}
