//go:build tools

// Package tools pins the Helm CLI (helm.sh/helm/v3/cmd/helm) that hack/build-helm.sh
// builds for chart linting, rendering and the e2e harness. The build tag keeps this file
// out of every build; it only records the dependency for the Go tool.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
