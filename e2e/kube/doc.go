// Package kube starts a real Kubernetes control plane for end-to-end tests: etcd,
// kube-apiserver and kube-controller-manager run as child processes of the test on
// 127.0.0.1, with a PKI generated at start (crypto/x509), RBAC and Node authorization on,
// and an admin kubeconfig written for client-go and kubectl (tier 3 of
// shared/spec/testing.md). The binaries come from hack/build-kube-tools.sh (`make
// kube-tools`), which builds them from k8s.io/kubernetes and go.etcd.io/etcd into
// .cache/kube/<version>/. There is no kubelet and no scheduler: the harness plays the
// kubelet's part itself.
package kube
