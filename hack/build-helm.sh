#!/usr/bin/env bash
# build-helm.sh builds the Helm CLI that lints and renders the charts under charts/ (and
# that the e2e harness uses to derive component flags from them) into
# <repo>/.cache/tools/helm-<version>/helm and prints that path on its last line. The
# source is the wrapper module e2e/charts/tools/helm (fetched through the Go module
# proxy). Idempotent: when the binary and a stamp matching the wrapper module and the Go
# version exist, it does nothing. Root is not required.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod=$repo/e2e/charts/tools/helm
go=${GO:-go}
export GOWORK=off GOFLAGS=-buildvcs=false

version=$(awk '($1 == "require" && $2 == "helm.sh/helm/v3") { print $3; exit } $1 == "helm.sh/helm/v3" { print $2; exit }' "$mod/go.mod")
[[ -n $version ]] || { echo "build-helm: no helm.sh/helm/v3 version in $mod/go.mod" >&2; exit 1; }

out=$repo/.cache/tools/helm-$version
stamp=$( { "$go" version; cd "$mod" && sha256sum go.mod go.sum tools.go; } | sha256sum | cut -d' ' -f1)
if [[ -x $out/helm && -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
	echo "build-helm: up to date ($version)" >&2
	echo "$out/helm"
	exit 0
fi

# Helm's own Makefile stamps the Kubernetes version it assumes for `helm template` and
# `helm lint` (.Capabilities.KubeVersion) from the client-go it is built with (v0.X → 1.X).
client_go=$(cd "$mod" && "$go" list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=${client_go#v0.}
k8s_minor=${k8s_minor%%.*}

start=$SECONDS
mkdir -p "$repo/.cache/tools"
tmp=$(mktemp -d "$repo/.cache/tools/.helm-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
echo "build-helm: building helm $version (Kubernetes 1.$k8s_minor capabilities)" >&2
(cd "$mod" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)

mkdir -p "$out"
mv -f "$tmp/helm" "$out/helm"
echo "$stamp" >"$out/.stamp"
echo "build-helm: done in $((SECONDS - start))s" >&2
echo "$out/helm"
