// Package capture records what crosses a link inside a network namespace,
// with an AF_PACKET socket (no cgo, no libpcap), and summarises it so the
// demo and the end-to-end tests can prove what the wire carried: which TCP
// and UDP destination ports saw packets, which TCP ports carried payload,
// and whether a marker appeared in plaintext in any TCP payload.
//
// It also checks that a namespace has no packet filter rules at all
// (NoPacketFilterRules), the proof that redirection needs no iptables or
// nftables.
package capture
