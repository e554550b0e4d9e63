// Package podapi is the contract between the ambit-cni plugin and the node agent: JSON
// over HTTP on the agent's Unix socket (--cni-socket). The plugin posts pod events;
// the agent answers 200 when done (enrolled, or nothing to do), 4xx on bad input and
// 5xx on failure, with an ErrorResponse body. Istio's CNI plugin talks to its node agent
// the same way (HTTP on a Unix socket); the paths and bodies here are Ambit's own.
package podapi

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
)

// Paths served by the agent.
const (
	PathAdd  = "/v1/pods/add" // POST AddRequest
	PathDel  = "/v1/pods/del" // POST DelRequest
	PathPods = "/v1/pods"     // GET []PodStatus (debug and tests)
)

// MaxBody bounds request bodies the agent reads, in bytes.
const MaxBody = 64 << 10

// AddRequest announces a pod sandbox whose network is set up (CNI ADD).
type AddRequest struct {
	UID         string   `json:"uid"`         // K8S_POD_UID
	Name        string   `json:"name"`        // K8S_POD_NAME
	Namespace   string   `json:"namespace"`   // K8S_POD_NAMESPACE
	Netns       string   `json:"netns"`       // CNI_NETNS: absolute path of the pod netns
	IPs         []string `json:"ips"`         // pod IPs from the previous plugin's result
	ContainerID string   `json:"containerID"` // CNI_CONTAINERID (the sandbox)
}

// DelRequest announces a pod sandbox going away (CNI DEL). UID or ContainerID is
// required; when both are set, a DEL for an older sandbox of the same pod is ignored.
type DelRequest struct {
	UID         string `json:"uid"`
	ContainerID string `json:"containerID"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// PodStatus is one registered pod as GET PathPods reports it. Annotations holds what
// Istio's node agent would write on the pod (ambient.istio.io/redirection=enabled once
// ztunnel has acknowledged the pod).
type PodStatus struct {
	UID         string            `json:"uid"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Enrolled    bool              `json:"enrolled"`
	Acked       bool              `json:"acked"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ErrInvalid marks a request that fails validation.
var ErrInvalid = errors.New("invalid pod event")

// Validate checks the request shape: uid, name, namespace and an absolute netns path
// are required, and every IP must parse.
func (r *AddRequest) Validate() error {
	switch {
	case r.UID == "":
		return fmt.Errorf("%w: uid is required", ErrInvalid)
	case r.Name == "" || r.Namespace == "":
		return fmt.Errorf("%w: name and namespace are required", ErrInvalid)
	case r.Netns == "" || !filepath.IsAbs(r.Netns):
		return fmt.Errorf("%w: netns must be an absolute path, got %q", ErrInvalid, r.Netns)
	}
	for _, ip := range r.IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("%w: ip %q: %v", ErrInvalid, ip, err)
		}
	}
	return nil
}

// Validate checks that the request names a pod or a sandbox.
func (r *DelRequest) Validate() error {
	if r.UID == "" && r.ContainerID == "" {
		return fmt.Errorf("%w: uid or containerID is required", ErrInvalid)
	}
	return nil
}
