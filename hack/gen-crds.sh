#!/usr/bin/env bash
# gen-crds.sh writes the CRDs that charts/base installs (Istio security and networking
# CRDs from istio.io/api, Gateway API standard CRDs from sigs.k8s.io/gateway-api) into
# charts/base/crds/, taken from the published Go modules by hack/gencrds. The files are
# generated, not committed (.gitignore). Versions: istio.io/api as pinned in go.mod;
# Gateway API as GATEWAY_API_VERSION below (override with the environment variable of the
# same name). Idempotent: skips when a stamp in .cache/ matches the versions and the
# generator's source and every file is present.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
go=${GO:-go}
out=$repo/charts/base/crds
gateway_api=${GATEWAY_API_VERSION:-v1.6.3}
istio_api=${ISTIO_API_VERSION:-$(awk '$1 == "istio.io/api" { print $2; exit }' "$repo/go.mod")}
[[ -n $istio_api ]] || { echo "gen-crds: no istio.io/api version in go.mod" >&2; exit 1; }

stamp_file=$repo/.cache/crds.stamp
stamp=$(echo "$istio_api $gateway_api $(sha256sum "$repo/hack/gencrds/main.go" | cut -d' ' -f1)")
if [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]] && compgen -G "$out/*.yaml" >/dev/null; then
	echo "gen-crds: up to date (istio.io/api $istio_api, gateway-api $gateway_api)" >&2
	exit 0
fi

(cd "$repo" && "$go" run ./hack/gencrds -go "$go" -out "$out" -istio-api "$istio_api" -gateway-api "$gateway_api")
mkdir -p "$repo/.cache"
echo "$stamp" >"$stamp_file"
echo "gen-crds: wrote $(ls "$out"/*.yaml | wc -l) CRDs to ${out#"$repo"/}" >&2
