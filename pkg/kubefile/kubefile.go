// Package kubefile reads a directory of Kubernetes YAML manifests (Namespace, Pod,
// Service, ServiceAccount, Node, EndpointSlice, Istio's AuthorizationPolicy,
// PeerAuthentication, VirtualService and DestinationRule, and Gateway API's Gateway and
// HTTPRoute; other kinds are skipped) into typed objects, and watches the
// directory for changes. It is the file-based config source (F-CP-3) shared by
// istiod-lite and the node agent for local runs.
package kubefile

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// Snapshot is the set of Kubernetes objects a control-plane component sees at one
// moment, from a config directory or from the API server. Slices are sorted by namespace
// then name. Objects are shared: readers must not modify them.
type Snapshot struct {
	Namespaces      []*corev1.Namespace
	Pods            []*corev1.Pod
	Services        []*corev1.Service
	ServiceAccounts []*corev1.ServiceAccount
	Nodes           []*corev1.Node
	EndpointSlices  []*discoveryv1.EndpointSlice
	// AuthorizationPolicies and PeerAuthentications are Istio's security.istio.io
	// objects; v1beta1 documents are read into the v1 type (same schema).
	AuthorizationPolicies []*securityv1.AuthorizationPolicy
	PeerAuthentications   []*securityv1.PeerAuthentication
	// The waypoints' inputs: Gateway API Gateways and HTTPRoutes (v1), Istio
	// VirtualServices and DestinationRules (v1; v1beta1 and v1alpha3 documents are read
	// into the v1 type, same schema).
	Gateways         []*gatewayv1.Gateway
	HTTPRoutes       []*gatewayv1.HTTPRoute
	VirtualServices  []*networkingv1.VirtualService
	DestinationRules []*networkingv1.DestinationRule
}

// Namespace returns the named namespace, or nil.
func (s *Snapshot) Namespace(name string) *corev1.Namespace {
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// Pod returns the pod with the given namespace and name, or nil.
func (s *Snapshot) Pod(namespace, name string) *corev1.Pod {
	for _, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// Load reads every *.yaml, *.yml and *.json file directly in dir (not subdirectories),
// each holding one or more documents separated by "---". A document that does not parse
// makes Load fail with the file name in the error: a broken config is never half-applied.
// Namespaced objects with no namespace get "default".
func Load(dir string) (*Snapshot, error) {
	return new(Loader).Load(dir)
}

func isManifest(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// typeMeta is decoded first to pick the Go type of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func (s *Snapshot) addDocument(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("decode type: %w", err)
	}
	if tm.Kind == "" {
		// Comment-only documents decode to nothing.
		if strings.TrimSpace(stripComments(doc)) == "" {
			return nil
		}
		return errors.New("decode type: missing kind")
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		return decodeInto(doc, &s.Namespaces, false)
	case "v1 Node":
		return decodeInto(doc, &s.Nodes, false)
	case "v1 Pod":
		return decodeInto(doc, &s.Pods, true)
	case "v1 Service":
		return decodeInto(doc, &s.Services, true)
	case "v1 ServiceAccount":
		return decodeInto(doc, &s.ServiceAccounts, true)
	case "discovery.k8s.io/v1 EndpointSlice":
		return decodeInto(doc, &s.EndpointSlices, true)
	case "security.istio.io/v1 AuthorizationPolicy", "security.istio.io/v1beta1 AuthorizationPolicy":
		return decodeInto(doc, &s.AuthorizationPolicies, true)
	case "security.istio.io/v1 PeerAuthentication", "security.istio.io/v1beta1 PeerAuthentication":
		return decodeInto(doc, &s.PeerAuthentications, true)
	case "gateway.networking.k8s.io/v1 Gateway", "gateway.networking.k8s.io/v1beta1 Gateway":
		return decodeInto(doc, &s.Gateways, true)
	case "gateway.networking.k8s.io/v1 HTTPRoute", "gateway.networking.k8s.io/v1beta1 HTTPRoute":
		return decodeInto(doc, &s.HTTPRoutes, true)
	case "networking.istio.io/v1 VirtualService", "networking.istio.io/v1beta1 VirtualService", "networking.istio.io/v1alpha3 VirtualService":
		return decodeInto(doc, &s.VirtualServices, true)
	case "networking.istio.io/v1 DestinationRule", "networking.istio.io/v1beta1 DestinationRule", "networking.istio.io/v1alpha3 DestinationRule":
		return decodeInto(doc, &s.DestinationRules, true)
	}
	return nil // other kinds are not part of the mesh model
}

// object is what decodeInto needs of a Kubernetes object type.
type object interface {
	GetNamespace() string
	SetNamespace(string)
	GetName() string
}

// decodeInto strictly decodes doc into a new T and appends it to list. Namespaced kinds
// with no namespace get "default".
func decodeInto[T any, PT interface {
	*T
	object
}](doc []byte, list *[]PT, namespaced bool) error {
	obj := PT(new(T))
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("decode %T: %w", obj, err)
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	*list = append(*list, obj)
	return nil
}

func stripComments(doc []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(t)
		}
	}
	return b.String()
}

// Sort orders every slice by namespace then name; sources call it before handing a
// snapshot out. It compares the objects' fields directly (no interface calls): the
// Kubernetes source sorts 10,000 pods per snapshot.
func (s *Snapshot) Sort() {
	SortByMeta(s.Pods, func(o *corev1.Pod) *metav1.ObjectMeta { return &o.ObjectMeta })
	s.SortExceptPods()
}

// SortExceptPods sorts every slice but Pods, for a source that lists pods in order
// already (the Kubernetes source keeps its pod keys sorted).
func (s *Snapshot) SortExceptPods() {
	SortByMeta(s.Namespaces, func(o *corev1.Namespace) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.Services, func(o *corev1.Service) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.ServiceAccounts, func(o *corev1.ServiceAccount) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.Nodes, func(o *corev1.Node) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.EndpointSlices, func(o *discoveryv1.EndpointSlice) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.AuthorizationPolicies, func(o *securityv1.AuthorizationPolicy) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.PeerAuthentications, func(o *securityv1.PeerAuthentication) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.Gateways, func(o *gatewayv1.Gateway) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.HTTPRoutes, func(o *gatewayv1.HTTPRoute) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.VirtualServices, func(o *networkingv1.VirtualService) *metav1.ObjectMeta { return &o.ObjectMeta })
	SortByMeta(s.DestinationRules, func(o *networkingv1.DestinationRule) *metav1.ObjectMeta { return &o.ObjectMeta })
}

// SortByMeta sorts list by namespace then name, as snapshots are, unless it already
// is (the Kubernetes source lists pods in order). meta returns an object's metadata.
func SortByMeta[T any](list []T, meta func(T) *metav1.ObjectMeta) {
	compare := func(a, b T) int {
		ma, mb := meta(a), meta(b)
		if c := strings.Compare(ma.Namespace, mb.Namespace); c != 0 {
			return c
		}
		return strings.Compare(ma.Name, mb.Name)
	}
	if !slices.IsSortedFunc(list, compare) {
		slices.SortFunc(list, compare)
	}
}
