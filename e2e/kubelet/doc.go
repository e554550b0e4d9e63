// Package kubelet plays the kubelet (and a trivial scheduler) for the e2e harness's
// network-namespace nodes, against a real kube-apiserver: it registers a Node object,
// runs the Pods bound to it — a pod sandbox (network namespace and cgroup), the CNI
// conflist of the node's conf dir run through libcni exactly as a container runtime
// does, the containers as processes, the pod status (IPs, readiness) patched back — and
// tears them down with CNI DEL when they are deleted.
//
// Containers are processes, not images: an image "<repo>/<name>:<tag>" runs
// Config.BinDir/<name>, and paths in the image's /usr/local/bin are that directory.
// There are no mount namespaces: each volume is realised as a host directory (hostPath
// volumes under the node's root directory, except the special paths of
// Config.HostPaths; ConfigMap, Secret, projected service-account token and downward-API
// volumes written by the kubelet) and every mount path in a container's command, args
// and environment is translated to that directory. A container reaches the API server
// with a kubeconfig made from its pod's service-account token, named by the KUBECONFIG
// environment variable, where a real kubelet would mount the token for in-cluster
// configuration.
package kubelet
