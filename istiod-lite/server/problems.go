package server

import (
	"reflect"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ambitmesh/ambit/istiod-lite/kube"
	"github.com/ambitmesh/ambit/istiod-lite/model"
	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// problemsOf returns the objects the model rejected or only partly used, as Warning
// Events to write.
func problemsOf(m *model.Model, snap *kubefile.Snapshot) []kube.Problem {
	out := make([]kube.Problem, 0, len(m.Problems))
	for _, p := range m.Problems {
		out = append(out, problem(snap, p.Kind, p.Namespace, p.Name, p.Message))
	}
	return out
}

// problem completes a model problem with the object's API version and uid from the
// snapshot it was found in, so the Event attaches to the object (kubectl describe).
func problem(snap *kubefile.Snapshot, kind, namespace, name, message string) kube.Problem {
	p := kube.Problem{Kind: kind, Namespace: namespace, Name: name, Message: message, APIVersion: "v1"}
	find := func(list any) types.UID {
		l := reflect.ValueOf(list)
		for i := range l.Len() {
			o := l.Index(i).Interface().(interface {
				GetNamespace() string
				GetName() string
				GetUID() types.UID
			})
			if o.GetNamespace() == namespace && o.GetName() == name {
				return o.GetUID()
			}
		}
		return ""
	}
	switch kind {
	case "AuthorizationPolicy":
		p.APIVersion, p.Reason, p.UID = "security.istio.io/v1", "InvalidPolicy", find(snap.AuthorizationPolicies)
	case "PeerAuthentication":
		p.APIVersion, p.Reason, p.UID = "security.istio.io/v1", "InvalidPolicy", find(snap.PeerAuthentications)
	case "Pod":
		p.UID = find(snap.Pods)
	case "Service":
		p.UID = find(snap.Services)
	case "Namespace":
		p.UID = find(snap.Namespaces)
	case "Node":
		p.UID = find(snap.Nodes)
	case "ServiceAccount":
		p.UID = find(snap.ServiceAccounts)
	case "EndpointSlice":
		p.APIVersion, p.UID = "discovery.k8s.io/v1", find(snap.EndpointSlices)
	default:
		p.APIVersion = ""
	}
	return p
}
