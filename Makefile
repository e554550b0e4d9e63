# Ambit build, test and demo entry points. See README.md.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export GOFLAGS := -buildvcs=false

.PHONY: all build deps generate check-generate test test-unit test-privileged test-interop test-kube kube-tools helm charts-crds charts-lint test-charts demo bench e2e clean lint

KUBE_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2; exit }' e2e/kube/tools/kubernetes/go.mod)
KUBE_BIN := $(CURDIR)/.cache/kube/$(KUBE_VERSION)
HELM_VERSION := $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v3" { print $$3; exit }' e2e/charts/tools/helm/go.mod)
HELM := $(CURDIR)/.cache/tools/helm-$(HELM_VERSION)/helm

all: build

# deps installs the Debian packages the build and tests need (idempotent; root).
deps:
	@./hack/install-deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/istiod-lite ./istiod-lite/cmd/istiod-lite
	# grpcnotrace drops grpc's x/net/trace (and text/template, which keeps every exported
	# method linked): ztunnel's idle RSS 16.8 -> 15.0 MB.
	# CGO_ENABLED=0 links ztunnel statically: no libc and loader mapped (-1.4 MiB RSS).
	CGO_ENABLED=0 $(GO) build -tags grpcnotrace -o $(BIN)/ztunnel ./ztunnel/cmd/ztunnel
	CGO_ENABLED=0 $(GO) build -tags grpcnotrace -o $(BIN)/waypoint ./waypoint/cmd/waypoint
	$(GO) build -o $(BIN)/ambit-cni-agent ./cni/cmd/ambit-cni-agent
	$(GO) build -o $(BIN)/ambit-cni ./cni/cmd/ambit-cni
	$(GO) build -o $(BIN)/ambit-echo ./e2e/cmd/ambit-echo
	$(GO) build -o $(BIN)/ambit-demo ./e2e/cmd/ambit-demo

# generate rebuilds the eBPF objects and Go loaders with bpf2go (needs clang).
generate:
	$(GO) generate ./bpf/...

# check-generate fails when committed generated files differ from a fresh generate.
check-generate: generate
	@git diff --exit-code --stat -- bpf/ || (echo "generated eBPF files are out of date: run make generate and commit" && exit 1)

# Unit tests (no root needed), with the race detector; fuzz seeds run as tests.
test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 -skip '^TestPrivileged' ./...

# Privileged tests: real eBPF, network namespaces and cgroups. They need root and skip
# with a message otherwise.
test-privileged: build
	AMBIT_BIN=$(abspath $(BIN)) $(GO) test -count=1 -p 1 -run '^TestPrivileged' ./...

# Interop with Istio's own Go code (a separate module, so Istio's dependency graph never
# reaches the product); the privileged part runs Istio's HBONE client through ztunnel.
test-interop: build
	cd e2e/interop && $(GO) vet ./... && AMBIT_BIN=$(abspath $(BIN)) $(GO) test -count=1 ./...

# kube-tools builds etcd, kube-apiserver, kube-controller-manager and kubectl from the
# Go module proxy into .cache/kube/<version>/ (about 5 minutes cold on 2 cores, instant
# when cached).
kube-tools:
	@GO=$(GO) ./hack/build-kube-tools.sh >/dev/null

# test-kube runs the local control-plane harness (real etcd + kube-apiserver +
# kube-controller-manager on 127.0.0.1) against those binaries.
test-kube: kube-tools
	AMBIT_KUBE_BIN=$(KUBE_BIN) $(GO) test -count=1 ./e2e/kube/...

# helm builds Helm from helm.sh/helm/v3 through the module proxy into .cache/tools/.
helm:
	@GO=$(GO) ./hack/build-helm.sh >/dev/null

# charts-crds writes charts/base/crds/ from the published istio.io/api and
# sigs.k8s.io/gateway-api modules (generated, not committed).
charts-crds:
	@GO=$(GO) ./hack/gen-crds.sh

charts-lint: helm charts-crds
	$(HELM) lint --strict charts/base charts/istiod-lite charts/ztunnel charts/cni

# test-charts lints and renders the charts and dry-runs them against a real API server.
test-charts: helm charts-crds kube-tools
	AMBIT_HELM=$(HELM) AMBIT_KUBE_BIN=$(KUBE_BIN) $(GO) test -count=1 ./e2e/charts/... ./hack/gencrds/...

# e2e runs the end-to-end suite on the local cluster: real etcd, kube-apiserver and
# controller manager, network-namespace nodes with the harness's kubelet, and Ambit
# installed from the charts (root).
e2e: deps build kube-tools helm charts-crds
	AMBIT_BIN=$(BIN) AMBIT_HELM=$(HELM) AMBIT_KUBE_BIN=$(KUBE_BIN) $(GO) test -count=1 -p 1 -timeout 30m ./e2e/testbed/... ./e2e/suite/...

test: deps check-generate test-unit test-privileged test-interop test-kube test-charts e2e demo

demo: deps build
	$(BIN)/ambit-demo --bin $(BIN)

# bench measures direct, l4, l7 (l4 plus a waypoint), peer-hbone (Istio's Go HBONE) and
# plain-tls, cross-node and same-node, on the demo topology, then istiod-lite at 10k
# pods / 1k services / 100 delta xDS clients through the file source and a real
# kube-apiserver (a report, not a test; about 25 minutes). BENCH_ARGS and
# CPBENCH_ARGS pass flags, e.g. BENCH_ARGS=--full for performance.md's durations; see
# bench/README.md.
bench: deps build kube-tools
	@GO=$(GO) ./hack/install-bench-tools.sh
	$(GO) build -o $(BIN)/ambit-bench ./bench/cmd/ambit-bench
	$(GO) build -o $(BIN)/ambit-tlsfwd ./bench/cmd/ambit-tlsfwd
	cd e2e/interop && $(GO) build -o $(abspath $(BIN))/istio-hbone-fwd ./cmd/istio-hbone-fwd
	$(BIN)/ambit-bench --bin $(BIN) --fortio $(CURDIR)/.cache/tools/fortio --out $(CURDIR)/bench/out $(BENCH_ARGS)
	$(GO) build -o $(BIN)/ambit-cpbench ./bench/cmd/ambit-cpbench
	$(BIN)/ambit-cpbench --bin $(BIN) --kube-bin $(KUBE_BIN) --out $(CURDIR)/bench/out $(CPBENCH_ARGS)

clean:
	rm -rf $(BIN)
