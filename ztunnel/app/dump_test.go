package app

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
	"github.com/ambitmesh/ambit/ztunnel/inpod"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

func TestConfigDumpPolicies(t *testing.T) {
	z := &Ztunnel{store: state.New(), certs: caclient.NewManager(nil, true, nil), inpod: &inpod.Manager{}}
	var rs []*delta.Resource
	for _, name := range []string{"b", "a"} {
		a, err := anypb.New(&security.Authorization{Name: name, Namespace: "demo", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, &delta.Resource{Name: "demo/" + name, Resource: a})
	}
	if err := z.store.Apply(state.TypeAuthorization, rs, nil); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(z.ConfigDump())
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Policies []struct{ Name, Namespace, Scope, Action string }
	}
	if err := json.Unmarshal(b, &dump); err != nil {
		t.Fatal(err)
	}
	if len(dump.Policies) != 2 || dump.Policies[0].Name != "a" || dump.Policies[1].Action != "DENY" || dump.Policies[0].Scope != "NAMESPACE" {
		t.Fatalf("policies = %+v", dump.Policies)
	}
}
