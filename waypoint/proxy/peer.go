package proxy

import (
	"net/http"
	"strings"
)

// sourceOf derives the source workload and namespace of a stream: from the CONNECT
// "baggage" header (k8s.workload.name, k8s.deployment.name, ..., k8s.namespace.name)
// when present, else from the peer identity (service account, namespace).
func sourceOf(info *connInfo) (workload, namespace string) {
	bag := parseBaggage(info.header.Get("Baggage"))
	for _, k := range []string{"k8s.workload.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.job.name", "k8s.cronjob.name", "k8s.pod.name"} {
		if v := bag[k]; v != "" {
			workload = v
			break
		}
	}
	namespace = bag["k8s.namespace.name"]
	if workload == "" {
		workload = info.peer.ServiceAccount
	}
	if namespace == "" {
		namespace = info.peer.Namespace
	}
	return workload, namespace
}

// parseBaggage reads W3C baggage "k=v,k2=v2;prop" into a map (properties dropped).
func parseBaggage(s string) map[string]string {
	out := map[string]string{}
	if s == "" {
		return out
	}
	for _, member := range strings.Split(s, ",") {
		member, _, _ = strings.Cut(member, ";")
		k, v, ok := strings.Cut(member, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// requestProtocol is Istio's request_protocol label: "grpc" for gRPC, else "http".
func requestProtocol(r *http.Request) string {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return "grpc"
	}
	return "http"
}
