package app

import (
	"encoding/json"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// dump renders the applied resources as JSON for /config_dump: listeners, routes,
// clusters and endpoints as protojson by name; secrets by name only (key material is
// never shown, as Envoy redacts it).
func (a *applier) dump() ([]byte, error) {
	a.mu.Lock()
	cfg := a.prev
	a.mu.Unlock()
	out := map[string]any{}
	if cfg == nil {
		return json.Marshal(out)
	}
	res := cfg.Resources
	var err error
	section := func(name string, m map[string]proto.Message) {
		sec := map[string]json.RawMessage{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			b, e := protojson.Marshal(m[k])
			if e != nil && err == nil {
				err = e
			}
			sec[k] = b
		}
		out[name] = sec
	}
	section("listeners", asMessages(res.Listeners))
	section("routes", asMessages(res.Routes))
	section("clusters", asMessages(res.Clusters))
	section("endpoints", asMessages(res.Endpoints))
	out["secrets"] = slices.Sorted(maps.Keys(res.Secrets))
	out["trust_domain"] = cfg.TrustDomain
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(out, "", "  ")
}

func asMessages[M proto.Message](m map[string]M) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
