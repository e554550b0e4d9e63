package app

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// certDump is one certificate in /config_dump.
type certDump struct {
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Chain     int       `json:"chainLength"`
}

// ConfigDump implements admin.Dumper: workloads, services and authorization policies as
// WDS delivered them (protojson; policies sorted by resource name), the in-pod workloads
// served, and the certificates held.
func (z *Ztunnel) ConfigDump() map[string]any {
	var workloads, services []json.RawMessage
	policies := []json.RawMessage{}
	for _, p := range z.store.Policies().Policies() {
		policies = append(policies, protoJSON(p.Proto()))
	}
	for _, w := range z.store.Workloads() {
		workloads = append(workloads, protoJSON(w.Workload))
	}
	for _, s := range z.store.Services() {
		services = append(services, protoJSON(s.Service))
	}
	var certs []certDump
	for _, c := range z.certs.Snapshot() {
		certs = append(certs, certDump{
			Identity: identityOf(c.Leaf), Serial: c.Leaf.SerialNumber.String(),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, Chain: len(c.Chain),
		})
	}
	return map[string]any{
		"workloads":      workloads,
		"services":       services,
		"policies":       policies,
		"certificates":   certs,
		"inpodWorkloads": z.inpod.Pods(),
	}
}

func protoJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}
