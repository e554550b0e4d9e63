package waypointxds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// MarshalAny packs m into an Any deterministically (map fields such as RBAC policies and
// Struct keys in key order), so equal messages give byte-identical Anys. Marshalling a
// well-formed generated message cannot fail; should it, the Any keeps m's type URL and
// no value, so validation of the enclosing resource reports it instead of a panic here.
func MarshalAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		a.TypeUrl = "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
	}
	return a
}

// ADSConfigSource is {ads: {}, resource_api_version: V3}, the config_source of every RDS,
// EDS and SDS reference in the configuration (everything arrives over the one ADS stream).
func ADSConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// NetworkFilter is a listener network filter named name with typed_config m.
func NetworkFilter(name string, m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: MarshalAny(m)}}
}

// HTTPFilter is an HTTP connection manager filter named name with typed_config m.
func HTTPFilter(name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MarshalAny(m)}}
}

// InternalAddress is an envoy_internal_address of the internal listener named listener,
// with endpoint_id (empty: none), as main_internal's endpoint and the tunnel endpoints
// of connect_originate use.
func InternalAddress(listener, endpointID string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listener},
		EndpointId:           endpointID,
	}}}
}
