// Package charts renders Ambit's Helm charts (charts/ in the repository) with the real
// Helm CLI and reads back what they would deploy, so that the e2e harness starts each
// component with exactly the flags the charts give it: Render runs `helm template`,
// Container picks a workload's container spec, ExpandArgs resolves $(VAR) references
// in its args as the kubelet does, and CRDs reads the base chart's generated CRDs.
//
// The Helm binary is built by hack/build-helm.sh (wrapper module tools/helm); tests
// that need it read its path from AMBIT_HELM and skip without it.
package charts
