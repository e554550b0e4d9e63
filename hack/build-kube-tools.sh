#!/usr/bin/env bash
# build-kube-tools.sh builds the Kubernetes control-plane binaries the e2e harness runs
# (kube-apiserver, kube-controller-manager, kubectl from k8s.io/kubernetes; etcd from
# go.etcd.io/etcd/server/v3) into <repo>/.cache/kube/<k8s-version>/, and the reference CNI
# plugins the harness's kubelet chains Ambit's plugin after (bridge, ptp, host-local,
# loopback from github.com/containernetworking/plugins) into its cni/ subdirectory, and
# prints that directory on its last line. The sources are the wrapper modules under e2e/kube/tools/
# (fetched through the Go module proxy). Idempotent: when the binaries and a stamp matching
# the wrapper modules and the Go version exist, it does nothing. Root is not required.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$repo/e2e/kube/tools
go=${GO:-go}
export GOWORK=off GOFLAGS=-buildvcs=false

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$tools/kubernetes/go.mod")
if [[ -z $k8s_version ]]; then
	k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' "$tools/kubernetes/go.mod")
fi
[[ -n $k8s_version ]] || { echo "build-kube-tools: no k8s.io/kubernetes version in $tools/kubernetes/go.mod" >&2; exit 1; }
minor=${k8s_version#v1.}
minor=${minor%%.*}

out=$repo/.cache/kube/$k8s_version
bins=(kube-apiserver kube-controller-manager kubectl etcd)
# build_cni builds the CNI plugins into $out/cni unless its own stamp is current.
build_cni() {
	local dir=$out/cni cstamp
	cstamp=$( { "$go" version; cat "$tools/cniplugins/go.mod" "$tools/cniplugins/go.sum"; } | sha256sum | cut -d' ' -f1)
	if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$cstamp" ]]; then
		return
	fi
	echo "build-kube-tools: building CNI plugins" >&2
	mkdir -p "$dir"
	local p=github.com/containernetworking/plugins/plugins
	(cd "$tools/cniplugins" && "$go" build -trimpath -ldflags "-s -w" -o "$dir/" \
		$p/main/bridge $p/main/ptp $p/main/loopback $p/ipam/host-local)
	echo "$cstamp" >"$dir/.stamp"
}

stamp=$( { "$go" version; cd "$tools" && find . -path ./cniplugins -prune -o -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1)

have=1
for b in "${bins[@]}"; do [[ -x $out/$b ]] || have=0; done
if [[ $have == 1 && -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
	build_cni
	echo "build-kube-tools: up to date ($k8s_version)" >&2
	echo "$out"
	exit 0
fi

start=$SECONDS
mkdir -p "$repo/.cache/kube"
tmp=$(mktemp -d "$repo/.cache/kube/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
echo "build-kube-tools: building kube-apiserver, kube-controller-manager, kubectl $k8s_version" >&2
(cd "$tools/kubernetes" && "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/" ./kube-apiserver ./kube-controller-manager ./kubectl)
echo "build-kube-tools: kubernetes built in $((SECONDS - start))s" >&2

t=$SECONDS
echo "build-kube-tools: building etcd" >&2
(cd "$tools/etcd" && "$go" build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
echo "build-kube-tools: etcd built in $((SECONDS - t))s" >&2

mkdir -p "$out"
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" >"$out/.stamp"
build_cni
echo "build-kube-tools: done in $((SECONDS - start))s" >&2
echo "$out"
