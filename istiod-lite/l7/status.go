package l7

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the objects Build reports on (ObjectRef.Kind).
const (
	KindHTTPRoute           = "HTTPRoute"
	KindVirtualService      = "VirtualService"
	KindDestinationRule     = "DestinationRule"
	KindAuthorizationPolicy = "AuthorizationPolicy"
)

// Condition types and reasons Build sets. HTTPRoute parents get Gateway API's Accepted
// and ResolvedRefs; Istio kinds get Accepted only.
const (
	ConditionAccepted     = "Accepted"
	ConditionResolvedRefs = "ResolvedRefs"

	ReasonAccepted         = "Accepted"         // True: honoured in full
	ReasonResolvedRefs     = "ResolvedRefs"     // True: every reference resolved
	ReasonUnsupportedValue = "UnsupportedValue" // False: something is not honoured (see message)
	ReasonInvalid          = "Invalid"          // False: rejected as Istio's webhook would; enforced fail closed
	ReasonNoMatchingParent = "NoMatchingParent" // False: attaches to no waypoint-bound service
	ReasonTargetNotFound   = "TargetNotFound"   // False: a targetRef names no waypoint or bound service
	ReasonConflicted       = "Conflicted"       // False: another object takes precedence
	ReasonBackendNotFound  = "BackendNotFound"  // False: a backend service or port does not exist
	ReasonRefNotPermitted  = "RefNotPermitted"  // False: cross-namespace backend (no ReferenceGrant support)
	ReasonInvalidKind      = "InvalidKind"      // False: a backend that is not a Service
)

// maxMessage bounds a condition message (the API allows 32768 bytes).
const maxMessage = 8192

// cond accumulates one condition: it is True until fail is called; the first failure's
// reason is kept; messages are kept in order without duplicates. A nil cond discards
// everything (conversions run again only for their result).
type cond struct {
	failed bool
	reason string
	msgs   []string
}

func (c *cond) fail(reason, format string, args ...any) {
	if c == nil {
		return
	}
	if !c.failed {
		c.failed, c.reason = true, reason
	}
	c.note(format, args...)
}

func (c *cond) note(format string, args ...any) {
	if c == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(c.msgs, msg) {
		c.msgs = append(c.msgs, msg)
	}
}

func (c *cond) condition(typ, okReason string, generation int64) metav1.Condition {
	out := metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: okReason, ObservedGeneration: generation}
	if c.failed {
		out.Status, out.Reason = metav1.ConditionFalse, c.reason
	}
	msg := strings.Join(c.msgs, "; ")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	out.Message = msg
	return out
}

// objectState is the status of one object (and parent, for an HTTPRoute).
type objectState struct {
	ref        ObjectRef
	generation int64
	parent     string
	accepted   cond
	resolved   cond // HTTPRoute only
}

type statusKey struct {
	ref    ObjectRef
	parent string
}

// statuses collects the status of every object Build reports on.
type statuses struct {
	m map[statusKey]*objectState
}

func newStatuses() *statuses { return &statuses{m: map[statusKey]*objectState{}} }

// of returns the state of obj of kind (and parent), creating it.
func (s *statuses) of(kind string, obj metav1.Object, parent string) *objectState {
	k := statusKey{ObjectRef{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}, parent}
	st := s.m[k]
	if st == nil {
		st = &objectState{ref: k.ref, generation: obj.GetGeneration(), parent: parent}
		s.m[k] = st
	}
	return st
}

// list renders the states sorted by Ref, then Parent.
func (s *statuses) list() []ObjectStatus {
	out := make([]ObjectStatus, 0, len(s.m))
	for _, st := range s.m {
		os := ObjectStatus{Ref: st.ref, Generation: st.generation, Parent: st.parent}
		os.Conditions = append(os.Conditions, st.accepted.condition(ConditionAccepted, ReasonAccepted, st.generation))
		if st.ref.Kind == KindHTTPRoute {
			os.Conditions = append(os.Conditions, st.resolved.condition(ConditionResolvedRefs, ReasonResolvedRefs, st.generation))
		}
		out = append(out, os)
	}
	slices.SortFunc(out, func(a, b ObjectStatus) int {
		return cmp.Or(strings.Compare(a.Ref.Kind, b.Ref.Kind), strings.Compare(a.Ref.Namespace, b.Ref.Namespace),
			strings.Compare(a.Ref.Name, b.Ref.Name), strings.Compare(a.Parent, b.Parent))
	})
	return out
}
