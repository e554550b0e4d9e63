package model

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is returned (wrapped) by the name parsers for a string that is not a
// well-formed WDS resource name.
var ErrInvalidName = errors.New("invalid resource name")

// WorkloadUID returns the uid (and WDS resource name) of a pod's workload, in Istio's
// form "<cluster>//Pod/<namespace>/<name>".
func WorkloadUID(cluster, namespace, name string) string {
	return cluster + "//Pod/" + namespace + "/" + name
}

// ParseWorkloadUID splits a pod workload uid made by WorkloadUID into its cluster,
// namespace and name. Any other shape (another kind, empty or extra segments) returns an
// error wrapping ErrInvalidName.
func ParseWorkloadUID(uid string) (cluster, namespace, name string, err error) {
	cluster, rest, ok := strings.Cut(uid, "//Pod/")
	if !ok {
		return "", "", "", fmt.Errorf("parse workload uid %q: %w: want <cluster>//Pod/<ns>/<name>", uid, ErrInvalidName)
	}
	namespace, name, ok = strings.Cut(rest, "/")
	if !ok || cluster == "" || namespace == "" || name == "" ||
		strings.Contains(cluster, "/") || strings.Contains(name, "/") {
		return "", "", "", fmt.Errorf("parse workload uid %q: %w: want <cluster>//Pod/<ns>/<name>", uid, ErrInvalidName)
	}
	return cluster, namespace, name, nil
}

// ServiceName returns the WDS resource name of a service, "<namespace>/<hostname>", as
// Istio names it (also the key of Workload.services).
func ServiceName(namespace, hostname string) string {
	return namespace + "/" + hostname
}

// ParseServiceName splits a service resource name made by ServiceName. Empty parts or
// extra slashes return an error wrapping ErrInvalidName.
func ParseServiceName(s string) (namespace, hostname string, err error) {
	namespace, hostname, ok := strings.Cut(s, "/")
	if !ok || namespace == "" || hostname == "" || strings.Contains(hostname, "/") {
		return "", "", fmt.Errorf("parse service name %q: %w: want <ns>/<hostname>", s, ErrInvalidName)
	}
	return namespace, hostname, nil
}
