package waypointxds

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// AccessLogFormat is the JSON access-log format of every HTTP chain: key -> Envoy command
// operator (issue5.md section 2). Callers must not modify it.
var AccessLogFormat = map[string]string{
	"start_time":       "%START_TIME%",
	"method":           "%REQ(:METHOD)%",
	"path":             "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":         "%PROTOCOL%",
	"response_code":    "%RESPONSE_CODE%",
	"response_flags":   "%RESPONSE_FLAGS%",
	"bytes_received":   "%BYTES_RECEIVED%",
	"bytes_sent":       "%BYTES_SENT%",
	"duration":         "%DURATION%",
	"upstream_host":    "%UPSTREAM_HOST%",
	"upstream_cluster": "%UPSTREAM_CLUSTER%",
	"authority":        "%REQ(:AUTHORITY)%",
	"user_agent":       "%REQ(USER-AGENT)%",
	"request_id":       "%REQ(X-REQUEST-ID)%",
	"downstream_peer":  "%FILTER_STATE(" + FilterStatePeerPrincipal + ":PLAIN)%",
	"route_name":       "%ROUTE_NAME%",
}

// StdoutAccessLog is the access_log entry of every HTTP chain's connection manager:
// AccessLoggerStdout writing one JSON object of AccessLogFormat per request.
func StdoutAccessLog() *accesslogv3.AccessLog {
	fields := make(map[string]*structpb.Value, len(AccessLogFormat))
	for k, v := range AccessLogFormat {
		fields[k] = structpb.NewStringValue(v)
	}
	stdout := &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{
			JsonFormat: &structpb.Struct{Fields: fields},
		}},
	}}
	return &accesslogv3.AccessLog{
		Name:       AccessLoggerStdout,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: MarshalAny(stdout)},
	}
}
