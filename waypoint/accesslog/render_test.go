package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
)

func istioLogs(t testing.TB) []*accesslogv3.AccessLog {
	return []*accesslogv3.AccessLog{stdoutLog(t, istioFormat)}
}

// reference renders e the way the logger did before its hand-written encoder: a map
// of typed values through encoding/json without HTML escaping.
func reference(f *format, e *Entry) []byte {
	obj := map[string]any{}
	for i, key := range f.keys {
		obj[key] = refValue(f.values[i], e)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func refValue(v value, e *Entry) any {
	if len(v) == 1 && v[0].op != nil {
		return refOp(v[0].op, e)
	}
	var b strings.Builder
	for _, s := range v {
		if s.op == nil {
			b.WriteString(s.lit)
			continue
		}
		switch x := refOp(s.op, e).(type) {
		case nil:
			b.WriteString("-")
		default:
			fmt.Fprint(&b, x)
		}
	}
	return b.String()
}

func refOp(o *operator, e *Entry) any {
	v := o.value(e)
	switch v.kind {
	case null:
		return nil
	case number:
		return v.n
	case stamp:
		return truncate(o, v.t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return truncate(o, v.s)
}

// renderFormats covers typed single operators, truncation and mixed strings with
// literal separators.
var renderFormats = map[string]string{
	"start":   "%START_TIME%",
	"start5":  "%START_TIME:7%",
	"method":  "%REQ(:METHOD)%",
	"path":    "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"ua3":     "%REQ(USER-AGENT):3%",
	"code":    "%RESPONSE_CODE%",
	"flags":   "%RESPONSE_FLAGS%",
	"dur":     "%DURATION%",
	"peer":    "%FILTER_STATE(io.istio.peer_principal:PLAIN)%",
	"mixed":   "%REQ(:METHOD)% %REQ(:PATH):4% <%UPSTREAM_HOST%> \"%RESPONSE_CODE%\" 100%% %START_TIME%",
	"literal": "a \"quoted\" \u2028 literal",
	`k"ey`:    "%ROUTE_NAME%",
}

func TestRenderMatchesEncodingJSON(t *testing.T) {
	l, err := Compile([]*accesslogv3.AccessLog{stdoutLog(t, renderFormats)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 8, 30, 1, 123_456_789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"empty", Entry{}},
		{"plain", Entry{Start: start, Method: "GET", Path: "/a", ResponseCode: 200, Duration: 3 * time.Millisecond, RouteName: "r"}},
		{"escapes", Entry{Method: "P\"O\\ST", Path: "/\n\t\r\b\f\x00\x1f<&>", UserAgent: "é\u2028\u2029€"}},
		{"invalid utf-8", Entry{Path: "/\xff\xfe", UserAgent: "\xe2\x82", RouteName: "a\xc3"}},
		{"truncated rune", Entry{Path: "/éé", UserAgent: "aé"}},
		{"negative and large", Entry{ResponseCode: -1, BytesSent: 1 << 62, Duration: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := l.formats[0]
			got := f.appendLine(nil, &tc.e)
			want := reference(f, &tc.e)
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzRender checks the hand-written encoder against encoding/json on arbitrary
// request data (header values may hold any bytes).
func FuzzRender(f *testing.F) {
	l, err := Compile([]*accesslogv3.AccessLog{stdoutLog(f, renderFormats)}, io.Discard)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("GET", "/x", "curl", int64(5))
	f.Add("\x00", "/\xff\u2028", "é\"\\", int64(-7))
	f.Fuzz(func(t *testing.T, method, path, ua string, n int64) {
		e := &Entry{Method: method, Path: path, UserAgent: ua, BytesSent: n, UpstreamHost: ua, RouteName: path}
		got := l.formats[0].appendLine(nil, e)
		if want := reference(l.formats[0], e); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("invalid JSON %q", got)
		}
	})
}

// BenchmarkLog renders one Istio-format line per op into a discarding writer.
func BenchmarkLog(b *testing.B) {
	l, err := Compile(istioLogs(b), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	e := &Entry{
		Start: time.Now(), Method: "POST", Path: "/payload", Protocol: "HTTP/1.1", Authority: "reviews.demo.svc.cluster.local:9080",
		UserAgent: "fortio.org/fortio-1.68.2", RequestID: "5b0b7d38-5e4a-4c39-9b3e-0a3f1a1d2c3b", ResponseCode: 200,
		BytesReceived: 1024, BytesSent: 1024, Duration: time.Millisecond, UpstreamHost: "10.244.1.11:9080",
		UpstreamCluster: "outbound|9080||reviews.demo.svc.cluster.local", PeerPrincipal: "spiffe://cluster.local/ns/demo/sa/sleep",
		RouteName: "default",
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}
