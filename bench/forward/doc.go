// Package forward holds what the benchmark's baseline forwarders share: the
// listen=target mappings of their flags, their certificates from PEM files, an accept
// loop that stops with its context, and a two-way byte copy with half-close. The
// plain-tls forwarder (bench/cmd/ambit-tlsfwd) and the peer-hbone forwarder around
// Istio's Go HBONE (e2e/interop/cmd/istio-hbone-fwd) are built on it, so the two
// baselines differ only in what carries the bytes between the pods
// (/work/shared/spec/performance.md, "Modes").
package forward
