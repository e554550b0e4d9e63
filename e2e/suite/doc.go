// Package suite is Ambit's end-to-end test suite (make e2e): one local cluster (a real
// kube-apiserver, two network-namespace nodes with the harness's kubelet) with Ambit
// installed from the Helm charts, shared by every test; each test works in namespaces
// of its own. The tests need root and the binaries make e2e builds (AMBIT_BIN,
// AMBIT_KUBE_BIN, AMBIT_HELM); without them they skip.
package suite
