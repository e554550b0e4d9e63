package accesslog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// field identifies the Entry datum an operator renders.
type field int

const (
	fStartTime field = iota
	fMethod
	fPath
	fOriginalPath
	fAuthority
	fUserAgent
	fRequestID
	fProtocol
	fResponseCode
	fResponseFlags
	fBytesReceived
	fBytesSent
	fDuration
	fUpstreamHost
	fUpstreamCluster
	fPeerPrincipal
	fRouteName
)

// simpleOperators take no argument.
var simpleOperators = map[string]field{
	"START_TIME":       fStartTime,
	"PROTOCOL":         fProtocol,
	"RESPONSE_CODE":    fResponseCode,
	"RESPONSE_FLAGS":   fResponseFlags,
	"BYTES_RECEIVED":   fBytesReceived,
	"BYTES_SENT":       fBytesSent,
	"DURATION":         fDuration,
	"UPSTREAM_HOST":    fUpstreamHost,
	"UPSTREAM_CLUSTER": fUpstreamCluster,
	"ROUTE_NAME":       fRouteName,
}

// requestHeaders are the request headers an Entry carries, for %REQ(X)%.
var requestHeaders = map[string]field{
	":method":               fMethod,
	":path":                 fPath,
	"x-envoy-original-path": fOriginalPath,
	":authority":            fAuthority,
	"host":                  fAuthority,
	"user-agent":            fUserAgent,
	"x-request-id":          fRequestID,
}

// PeerPrincipalKey is the only filter state %FILTER_STATE(...)% may name.
const PeerPrincipalKey = "io.istio.peer_principal"

// operator is one command operator: the datum, an alternative datum for
// %REQ(X?Y)%, and a maximum length (0: none).
type operator struct {
	f      field
	alt    field
	hasAlt bool
	maxLen int
}

// parseValue splits a format string into literals and operators. "%%" is a
// literal percent sign; an unknown or malformed operator is an error.
func parseValue(s string) (value, error) {
	var v value
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if end < 0 {
			return nil, fmt.Errorf("unterminated command operator at offset %d", i)
		}
		op, err := parseOperator(s[i+1 : i+1+end])
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			v = append(v, segment{lit: lit.String()})
			lit.Reset()
		}
		v = append(v, segment{op: op})
		i += end + 1
	}
	if lit.Len() > 0 || len(v) == 0 {
		v = append(v, segment{lit: lit.String()})
	}
	return v, nil
}

// parseOperator parses NAME, NAME(ARG) and either followed by ":LEN".
func parseOperator(s string) (*operator, error) {
	name, arg, hasArg := s, "", false
	rest := ""
	if i := strings.IndexByte(s, '('); i >= 0 {
		j := strings.LastIndexByte(s, ')')
		if j < i {
			return nil, fmt.Errorf("%w command operator %%%s%%: unbalanced parenthesis", ErrUnsupported, s)
		}
		name, arg, hasArg, rest = s[:i], s[i+1:j], true, s[j+1:]
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		name, rest = s[:i], s[i:]
	}
	op := &operator{}
	if rest != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
		if !strings.HasPrefix(rest, ":") || err != nil || n <= 0 {
			return nil, fmt.Errorf("%w command operator %%%s%%: bad length %q", ErrUnsupported, s, rest)
		}
		op.maxLen = n
	}
	switch {
	case name == "REQ" && hasArg:
		main, alt, hasAlt := strings.Cut(arg, "?")
		f, ok := requestHeaders[strings.ToLower(main)]
		if !ok {
			return nil, fmt.Errorf("%w command operator %%%s%%: header %q not logged", ErrUnsupported, s, main)
		}
		op.f = f
		if hasAlt {
			if op.alt, ok = requestHeaders[strings.ToLower(alt)]; !ok {
				return nil, fmt.Errorf("%w command operator %%%s%%: header %q not logged", ErrUnsupported, s, alt)
			}
			op.hasAlt = true
		}
	case name == "FILTER_STATE" && hasArg:
		key, ser, _ := strings.Cut(arg, ":")
		if key != PeerPrincipalKey || (ser != "" && ser != "PLAIN" && ser != "TYPED") {
			return nil, fmt.Errorf("%w command operator %%%s%%", ErrUnsupported, s)
		}
		op.f = fPeerPrincipal
	case !hasArg:
		f, ok := simpleOperators[name]
		if !ok {
			return nil, fmt.Errorf("%w command operator %%%s%%", ErrUnsupported, s)
		}
		op.f = f
	default:
		return nil, fmt.Errorf("%w command operator %%%s%%", ErrUnsupported, s)
	}
	return op, nil
}

// kind is the JSON type of an operator's value.
type kind uint8

const (
	null   kind = iota // unknown
	text               // a string
	number             // an integer
	stamp              // a time, rendered as an RFC 3339 UTC string with milliseconds
)

// val is one operator's value, unboxed so rendering allocates nothing.
type val struct {
	kind kind
	s    string
	n    int64
	t    time.Time
}

// value is the operator's datum (or its alternative's when unknown).
func (o *operator) value(e *Entry) val {
	v := datum(o.f, e)
	if o.hasAlt && v.kind == null {
		v = datum(o.alt, e)
	}
	return v
}

// truncate applies the operator's maximum length to a rendered string.
func truncate[S string | []byte](o *operator, s S) S {
	if o.maxLen > 0 && len(s) > o.maxLen {
		return s[:o.maxLen]
	}
	return s
}

// appendJSON appends the operator's value as a JSON value of its own type: a
// number, a string, or null when unknown (Envoy's json_format for a value made of
// one operator).
func (o *operator) appendJSON(dst []byte, e *Entry) []byte {
	v := o.value(e)
	switch v.kind {
	case null:
		return append(dst, "null"...)
	case number:
		return strconv.AppendInt(dst, v.n, 10)
	case stamp:
		var b [32]byte
		dst = append(dst, '"')
		dst = append(dst, truncate(o, appendStamp(b[:0], v.t))...)
		return append(dst, '"')
	}
	return appendJSONString(dst, truncate(o, v.s))
}

// appendText appends the operator's value inside a JSON string: "-" when unknown.
func (o *operator) appendText(dst []byte, e *Entry) []byte {
	v := o.value(e)
	switch v.kind {
	case null:
		return append(dst, '-')
	case number:
		return strconv.AppendInt(dst, v.n, 10)
	case stamp:
		var b [32]byte
		return append(dst, truncate(o, appendStamp(b[:0], v.t))...)
	}
	return appendEscaped(dst, truncate(o, v.s))
}

// appendStamp renders %START_TIME%'s default format.
func appendStamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

func datum(f field, e *Entry) val {
	switch f {
	case fStartTime:
		if e.Start.IsZero() {
			return val{}
		}
		return val{kind: stamp, t: e.Start}
	case fResponseCode:
		return val{kind: number, n: int64(e.ResponseCode)}
	case fResponseFlags:
		if e.ResponseFlags == "" {
			return val{kind: text, s: "-"}
		}
		return val{kind: text, s: e.ResponseFlags}
	case fBytesReceived:
		return val{kind: number, n: e.BytesReceived}
	case fBytesSent:
		return val{kind: number, n: e.BytesSent}
	case fDuration:
		return val{kind: number, n: e.Duration.Milliseconds()}
	}
	if s := stringDatum(f, e); s != "" {
		return val{kind: text, s: s}
	}
	return val{}
}

func stringDatum(f field, e *Entry) string {
	switch f {
	case fMethod:
		return e.Method
	case fPath:
		return e.Path
	case fOriginalPath:
		return e.OriginalPath
	case fAuthority:
		return e.Authority
	case fUserAgent:
		return e.UserAgent
	case fRequestID:
		return e.RequestID
	case fProtocol:
		return e.Protocol
	case fUpstreamHost:
		return e.UpstreamHost
	case fUpstreamCluster:
		return e.UpstreamCluster
	case fPeerPrincipal:
		return e.PeerPrincipal
	case fRouteName:
		return e.RouteName
	}
	return ""
}
