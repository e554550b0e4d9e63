package state

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/ambitmesh/ambit/pkg/xdsclient/delta"
)

func authz(t *testing.T, ns, name string, scope security.Scope, action security.Action) *delta.Resource {
	t.Helper()
	anyv, err := anypb.New(&security.Authorization{Name: name, Namespace: ns, Scope: scope, Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return &delta.Resource{Name: ns + "/" + name, Resource: anyv}
}

// changed reports whether ch is closed.
func changed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestApplyAuthorization(t *testing.T) {
	s := New()
	if s.Policies().Len() != 0 {
		t.Fatal("new store has policies")
	}
	ch, gen := s.PolicyChanged(), s.PolicyGeneration()
	err := s.Apply(TypeAuthorization, []*delta.Resource{
		authz(t, "demo", "deny-all", security.Scope_NAMESPACE, security.Action_DENY),
		authz(t, "istio-system", "strict", security.Scope_GLOBAL, security.Action_DENY),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !changed(ch) || s.PolicyGeneration() == gen {
		t.Fatal("policy change not signalled")
	}
	if p := s.Policies().Get("demo/deny-all"); p == nil || p.Action != security.Action_DENY || p.Proto().GetName() != "deny-all" {
		t.Fatalf("demo/deny-all = %v", p)
	}
	ch = s.PolicyChanged()
	if changed(ch) {
		t.Fatal("fresh channel already closed")
	}
	// Upsert replaces, removal deletes.
	err = s.Apply(TypeAuthorization, []*delta.Resource{
		authz(t, "demo", "deny-all", security.Scope_NAMESPACE, security.Action_ALLOW),
	}, []string{"istio-system/strict"})
	if err != nil {
		t.Fatal(err)
	}
	if !changed(ch) || s.Policies().Len() != 1 || s.Policies().Get("demo/deny-all").Action != security.Action_ALLOW {
		t.Fatalf("after update: %v", s.Policies().Policies())
	}
}

func TestApplyAuthorizationRejectsAtomically(t *testing.T) {
	s := New()
	badAny, _ := anypb.New(&workloadapi.Address{}) // wrong message type
	unknownScope, _ := anypb.New(&security.Authorization{Name: "x", Namespace: "demo", Scope: 9})
	for name, bad := range map[string]*delta.Resource{
		"wrong type":    {Name: "demo/bad", Resource: badAny},
		"empty":         {Name: "demo/bad"},
		"unknown scope": {Name: "demo/bad", Resource: unknownScope},
		"garbage":       {Name: "demo/bad", Resource: &anypb.Any{TypeUrl: TypeAuthorization, Value: []byte{0xff, 0xff}}},
	} {
		t.Run(name, func(t *testing.T) {
			ch := s.PolicyChanged()
			err := s.Apply(TypeAuthorization, []*delta.Resource{
				authz(t, "demo", "ok", security.Scope_NAMESPACE, security.Action_DENY), bad,
			}, nil)
			if !errors.Is(err, ErrBadResource) {
				t.Fatalf("err = %v, want ErrBadResource", err)
			}
			if s.Policies().Len() != 0 || changed(ch) {
				t.Fatal("part of a rejected response was applied")
			}
		})
	}
}

func TestWorkloadChangesSignalPolicy(t *testing.T) {
	s := New()
	wl := func(policies ...string) *workloadapi.Address {
		a := workload("c//Pod/demo/a", "10.0.0.1", "")
		a.GetWorkload().AuthorizationPolicies = policies
		return a
	}
	steps := []struct {
		name    string
		upserts []*delta.Resource
		removed []string
		want    bool
	}{
		{"workload added", []*delta.Resource{resource(t, "c//Pod/demo/a", wl())}, nil, true},
		{"same workload again", []*delta.Resource{resource(t, "c//Pod/demo/a", wl())}, nil, false},
		{"service added", []*delta.Resource{resource(t, "demo/svc", service("10.96.0.1"))}, nil, false},
		{"policy list changed", []*delta.Resource{resource(t, "c//Pod/demo/a", wl("demo/p"))}, nil, true},
		{"canonical name changed", []*delta.Resource{resource(t, "c//Pod/demo/a", func() *workloadapi.Address {
			a := proto.Clone(wl("demo/p")).(*workloadapi.Address)
			a.GetWorkload().CanonicalName = "x"
			return a
		}())}, nil, false},
		{"workload removed", nil, []string{"c//Pod/demo/a"}, true},
		{"unknown removal", nil, []string{"c//Pod/demo/zz"}, false},
	}
	for _, st := range steps {
		ch := s.PolicyChanged()
		if err := s.Apply(TypeAddress, st.upserts, st.removed); err != nil {
			t.Fatal(err)
		}
		if got := changed(ch); got != st.want {
			t.Fatalf("%s: policy change signalled = %v, want %v", st.name, got, st.want)
		}
	}
}
