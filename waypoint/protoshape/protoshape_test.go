package protoshape

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// routeSubset allows a route with a prefix match, a cluster, a timeout and
// opaque per-filter configs.
var routeSubset = &AllowList{
	Fields: Fields{
		"envoy.config.route.v3.Route":       {"name", "match", "route", "typed_per_filter_config", "request_headers_to_add"},
		"envoy.config.route.v3.RouteMatch":  {"prefix"},
		"envoy.config.route.v3.RouteAction": {"cluster", "timeout"},
		"google.protobuf.Duration":          {"seconds", "nanos"},
	},
	Opaque: map[protoreflect.FullName]bool{"google.protobuf.Any": true},
}

func withUnknown(m proto.Message, num protowire.Number) proto.Message {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	m.ProtoReflect().SetUnknown(b)
	return m
}

func okRoute() *routev3.Route {
	return &routev3.Route{
		Name:  "r",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
			Timeout:          durationpb.New(0),
		}},
		TypedPerFilterConfig: map[string]*anypb.Any{"f": {TypeUrl: "type.googleapis.com/x", Value: []byte{0xff}}},
	}
}

func TestCheck(t *testing.T) {
	cyclic := &rbacv3.Permission{}
	cyclic.Rule = &rbacv3.Permission_NotRule{NotRule: cyclic}
	anyFields := &AllowList{Fields: Fields{"envoy.config.route.v3.Route": {"typed_per_filter_config"}}}
	tests := []struct {
		name  string
		list  *AllowList
		msg   proto.Message
		path  string
		want  string // "" for no error, else the whole error text
		wantS string // a substring the error must contain, when want is ""
	}{
		{name: "nil message", list: routeSubset, msg: nil},
		{name: "typed nil message", list: &AllowList{}, msg: (*routev3.Route)(nil)},
		{name: "empty message", list: &AllowList{}, msg: &routev3.Route{}},
		{name: "allowed fields", list: routeSubset, msg: okRoute()},
		{name: "field not listed", list: routeSubset,
			msg:  &routev3.Route{Name: "r", Decorator: &routev3.Decorator{Operation: "x"}},
			want: "unsupported field decorator"},
		{name: "nested field not listed", list: routeSubset,
			msg: &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				HashPolicy: []*routev3.RouteAction_HashPolicy{{}}}}},
			want: "unsupported field route.hash_policy"},
		{name: "oneof member not listed", list: routeSubset,
			msg:  &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/x"}}},
			want: "unsupported field match.path"},
		{name: "message type not listed, in a list", list: routeSubset,
			msg: &routev3.Route{RequestHeadersToAdd: []*corev3.HeaderValueOption{
				nil, {Header: &corev3.HeaderValue{Key: "k"}}}},
			want: "unsupported field request_headers_to_add[1].header"},
		{name: "path prefix", list: routeSubset, path: "routes[3]",
			msg:  &routev3.Route{Decorator: &routev3.Decorator{}},
			want: "unsupported field routes[3].decorator"},
		{name: "map values checked when not opaque, first key in order", list: anyFields,
			msg: &routev3.Route{TypedPerFilterConfig: map[string]*anypb.Any{
				"zz": {TypeUrl: "u"}, "aa": {TypeUrl: "u"}, "mm": {TypeUrl: "u"}}},
			want: `unsupported field typed_per_filter_config["aa"].type_url`},
		{name: "unknown field at top", list: routeSubset, msg: withUnknown(okRoute(), 999),
			want: "unsupported field (message) (unknown field number 999 of envoy.config.route.v3.Route)"},
		{name: "unknown field nested", list: routeSubset,
			msg:  &routev3.Route{Match: withUnknown(&routev3.RouteMatch{}, 77).(*routev3.RouteMatch)},
			want: "unsupported field match (unknown field number 77 of envoy.config.route.v3.RouteMatch)"},
		{name: "opaque values not descended", list: routeSubset,
			msg: &routev3.Route{TypedPerFilterConfig: map[string]*anypb.Any{
				"f": withUnknown(&anypb.Any{}, 9).(*anypb.Any)}}},
		{name: "opaque top message still checked", list: routeSubset,
			msg:  &anypb.Any{TypeUrl: "u"},
			want: "unsupported field type_url"},
		{name: "cyclic message bounded", list: &AllowList{Fields: Fields{"envoy.config.rbac.v3.Permission": {"not_rule"}}},
			msg: cyclic, wantS: "nested deeper than 512 messages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.list.Check(tc.msg, tc.path)
			switch {
			case tc.want == "" && tc.wantS == "":
				if err != nil {
					t.Fatalf("Check: %v, want nil", err)
				}
				return
			case err == nil:
				t.Fatalf("Check: nil, want an error")
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("Check: %q, want %q", err, tc.want)
			case tc.wantS != "" && !strings.Contains(err.Error(), tc.wantS):
				t.Fatalf("Check: %q, want it to contain %q", err, tc.wantS)
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v does not wrap ErrUnsupported", err)
			}
		})
	}
}

func TestOnly(t *testing.T) {
	tests := []struct {
		name  string
		msg   proto.Message
		path  string
		names []protoreflect.Name
		want  string
	}{
		{name: "nil", msg: nil},
		{name: "typed nil", msg: (*routev3.Route)(nil)},
		{name: "allowed, nested not descended", msg: &routev3.Route{
			Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/"}}},
			names: []protoreflect.Name{"name", "match"}},
		{name: "first field not allowed in declaration order", msg: &routev3.Route{
			Name: "r", Decorator: &routev3.Decorator{}, Metadata: &corev3.Metadata{}},
			path: "routes[0]", names: []protoreflect.Name{"name"},
			want: "unsupported field routes[0].metadata"},
		{name: "unknown field", msg: withUnknown(&routev3.Route{}, 500), path: "r",
			want: "unsupported field r (unknown field number 500 of envoy.config.route.v3.Route)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Only(tc.msg, tc.path, tc.names...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Only: %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Only: %v, want %q wrapping ErrUnsupported", err, tc.want)
			}
		})
	}
}

// FuzzCheck decodes arbitrary bytes as a Route and checks it: never a panic,
// and every error wraps ErrUnsupported.
func FuzzCheck(f *testing.F) {
	seed, err := proto.Marshal(okRoute())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(withUnknown(&routev3.Route{}, 1000).ProtoReflect().GetUnknown()))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r routev3.Route
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		for _, err := range []error{routeSubset.Check(&r, ""), Only(&r, "", "name", "match")} {
			if err != nil && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported", err)
			}
		}
	})
}
