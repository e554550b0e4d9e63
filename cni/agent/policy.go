package agent

import (
	"errors"
	"fmt"
)

// ZtunnelDownPolicy says what enrolment does when no ztunnel acknowledges a pod
// (F-PLUS-3). Flag --ztunnel-down-policy.
type ZtunnelDownPolicy string

const (
	// ZtunnelDownOpen (the default) never holds a pod's start on ztunnel: with no
	// ztunnel connected, or one that does not answer within Config.HandoffTimeout, the
	// pod keeps its redirection and is handed over when ztunnel (re)connects (the ZDS
	// server replays its state). Until then the pod's captured traffic waits for the
	// proxy. An explicit rejection by ztunnel still fails the enrolment.
	ZtunnelDownOpen ZtunnelDownPolicy = "open"
	// ZtunnelDownClosed enrols a pod only when a connected ztunnel acknowledges it within
	// Config.HandoffTimeout; otherwise the redirection is removed and the CNI ADD fails
	// with ErrZtunnelDown, so the runtime retries the sandbox until ztunnel is back.
	ZtunnelDownClosed ZtunnelDownPolicy = "closed"
)

// ErrZtunnelDown marks an enrolment refused under ZtunnelDownClosed because no ztunnel
// acknowledged the pod.
var ErrZtunnelDown = errors.New("ztunnel not available")

// ParseZtunnelDownPolicy parses a policy name; "" is ZtunnelDownOpen.
func ParseZtunnelDownPolicy(s string) (ZtunnelDownPolicy, error) {
	switch ZtunnelDownPolicy(s) {
	case "", ZtunnelDownOpen:
		return ZtunnelDownOpen, nil
	case ZtunnelDownClosed:
		return ZtunnelDownClosed, nil
	}
	return "", fmt.Errorf("ztunnel-down policy %q: want %q or %q", s, ZtunnelDownOpen, ZtunnelDownClosed)
}
