package accesslog

import (
	"fmt"
	"io"
	"sort"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ambitmesh/ambit/waypoint/protoshape"
)

// StdoutLoggerName is the only access logger implemented.
const StdoutLoggerName = "envoy.access_loggers.stdout"

// allowed is the implemented subset of access_log entries.
var allowed = &protoshape.AllowList{
	Fields: protoshape.Fields{
		"envoy.config.accesslog.v3.AccessLog":                       {"name", "typed_config"},
		"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog": {"log_format"},
		"envoy.config.core.v3.SubstitutionFormatString":             {"json_format"},
		"google.protobuf.Struct":                                    {"fields"},
		"google.protobuf.Value":                                     {"string_value"},
	},
	Opaque: map[protoreflect.FullName]bool{"google.protobuf.Any": true},
}

// format is one compiled json_format: keys in sorted order, each also as a quoted
// JSON string.
type format struct {
	keys   []string
	quoted []string
	values []value
}

func compile(logs []*accesslogv3.AccessLog, w io.Writer) (*Logger, error) {
	if len(logs) == 0 {
		return nil, nil
	}
	if w == nil {
		return nil, fmt.Errorf("access log: nil writer")
	}
	l := &Logger{w: w}
	for i, al := range logs {
		f, err := compileOne(al)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d]: %w", i, err)
		}
		l.formats = append(l.formats, f)
	}
	return l, nil
}

func compileOne(al *accesslogv3.AccessLog) (*format, error) {
	if al == nil {
		return nil, fmt.Errorf("access log is nil")
	}
	if err := allowed.Check(al, ""); err != nil {
		return nil, err
	}
	if n := al.GetName(); n != "" && n != StdoutLoggerName {
		return nil, fmt.Errorf("%w name %q (only %s)", ErrUnsupported, n, StdoutLoggerName)
	}
	var out streamv3.StdoutAccessLog
	tc := al.GetTypedConfig()
	if want := "type.googleapis.com/" + string(proto.MessageName(&out)); tc.GetTypeUrl() != want {
		return nil, fmt.Errorf("%w typed_config of type %q (only %s)", ErrUnsupported, tc.GetTypeUrl(), want)
	}
	if err := tc.UnmarshalTo(&out); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := allowed.Check(&out, "typed_config"); err != nil {
		return nil, err
	}
	js := out.GetLogFormat().GetJsonFormat()
	if js == nil {
		return nil, fmt.Errorf("typed_config.log_format.json_format is required")
	}
	f := &format{}
	for key := range js.GetFields() {
		f.keys = append(f.keys, key)
	}
	sort.Strings(f.keys)
	for _, key := range f.keys {
		v, err := parseValue(js.GetFields()[key].GetStringValue())
		if err != nil {
			return nil, fmt.Errorf("json_format[%q]: %w", key, err)
		}
		f.values = append(f.values, v)
		f.quoted = append(f.quoted, string(appendJSONString(nil, key)))
	}
	return f, nil
}

// appendLine appends e as one JSON object and a newline, keys in sorted order as
// encoding/json renders a map. Values made of a single operator keep its type
// (numbers, strings, null when unknown), as Envoy's json_format; values mixing text
// and operators are strings with "-" for unknown parts. It allocates nothing once
// dst is large enough.
func (f *format) appendLine(dst []byte, e *Entry) []byte {
	dst = append(dst, '{')
	for i, v := range f.values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.quoted[i]...)
		dst = append(dst, ':')
		dst = v.appendJSON(dst, e)
	}
	return append(dst, '}', '\n')
}

// value is a parsed format string: literal text and operators.
type value []segment

type segment struct {
	lit string
	op  *operator // nil: literal
}

// appendJSON appends the value: a lone operator as its own JSON type, anything else as
// a JSON string.
func (v value) appendJSON(dst []byte, e *Entry) []byte {
	if len(v) == 1 && v[0].op != nil {
		return v[0].op.appendJSON(dst, e)
	}
	dst = append(dst, '"')
	for _, s := range v {
		if s.op == nil {
			dst = appendEscaped(dst, s.lit)
			continue
		}
		dst = s.op.appendText(dst, e)
	}
	return append(dst, '"')
}
