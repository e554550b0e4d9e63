// Package kube is istiod-lite's side of the Kubernetes API: the informer-based config
// source that produces the same kubefile.Snapshot as the file source (F-CP-1, F-CP-3),
// the CA root kept in a Secret (F-SEC-1: "cacerts" plug-in keys, else
// "istio-ca-secret", else a generated self-signed root stored there), the
// "istio-ca-root-cert" ConfigMap published in every namespace, and Warning Events on
// objects the model rejects. It mirrors what istiod does with the same objects, so an
// Istio installation's Secrets and ConfigMaps are read and written unchanged.
package kube
