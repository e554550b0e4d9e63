//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Ambit per-pod TCP redirection (see shared/spec/redirection.md).
//
// One copy of this object is loaded for every enrolled pod, so the maps below
// belong to exactly one pod network namespace and one pod cgroup:
//
//   ambit_sk_lookup  sk_lookup program attached to the pod netns. Steers captured
//                    outbound SYNs (routed through the "local everything" table,
//                    hence arriving via lo) to ztunnel's outbound listener and
//                    inbound SYNs from the network to ztunnel's inbound listener.
//   ambit_connect4   cgroup/connect4 program attached to the pod cgroup. Marks
//                    the app's TCP sockets so a policy routing rule sends them to
//                    the capture table.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define SOL_SOCKET 1
#define SO_MARK 36

// Keys of the listener SOCKMAP; mirrored by SockMapKeyOutbound/Inbound in Go.
#define KEY_OUTBOUND 0
#define KEY_INBOUND 1

char __license[] SEC("license") = "Dual BSD/GPL";

// config is written once by the node agent before the programs are attached.
// Addresses are in network byte order; zero entries in probe_ips are unused.
struct config {
	__u32 pod_ip;
	__u32 lo_ifindex;
	__u32 mark;
	__u32 hbone_port;
	__u32 probe_ips[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} listeners SEC(".maps");

static __always_inline struct config *load_config(void)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config_map, &zero);

	if (!cfg || cfg->pod_ip == 0)
		return NULL;
	return cfg;
}

static __always_inline int is_loopback(__u32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127;
}

static __always_inline int is_probe_source(struct config *cfg, __u32 ip)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (cfg->probe_ips[i] != 0 && cfg->probe_ips[i] == ip)
			return 1;
	}
	return 0;
}

// assign hands the connection to the listener at key; when that listener is
// missing (ztunnel not running) or cannot take it, the verdict is on_missing.
static __always_inline int assign(struct bpf_sk_lookup *ctx, __u32 key, int on_missing)
{
	struct bpf_sock *sk = bpf_map_lookup_elem(&listeners, &key);
	long err;

	if (!sk)
		return on_missing;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? on_missing : SK_PASS;
}

SEC("sk_lookup")
int ambit_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct config *cfg;
	__u32 dst;

	if (ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	cfg = load_config();
	if (!cfg)
		return SK_PASS;
	dst = ctx->local_ip4;

	// Via lo: captured outbound (mark -> local table) or ztunnel's own delivery.
	if (ctx->ingress_ifindex == cfg->lo_ifindex) {
		if (dst == cfg->pod_ip || is_loopback(dst))
			return SK_PASS;
		return assign(ctx, KEY_OUTBOUND, SK_PASS);
	}

	// From the network (and the pod's own hairpin traffic).
	if (dst != cfg->pod_ip)
		return SK_PASS;
	if (ctx->remote_ip4 == cfg->pod_ip)
		return SK_PASS;
	if (ctx->local_port == cfg->hbone_port)
		return SK_PASS;
	if (is_probe_source(cfg, ctx->remote_ip4))
		return SK_PASS;
	return assign(ctx, KEY_INBOUND, SK_DROP);
}

SEC("cgroup/connect4")
int ambit_connect4(struct bpf_sock_addr *ctx)
{
	struct config *cfg;
	__u32 dst;
	int mark;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	cfg = load_config();
	if (!cfg || cfg->mark == 0)
		return 1;
	dst = ctx->user_ip4;
	if (dst == 0 || dst == cfg->pod_ip || is_loopback(dst))
		return 1;
	mark = cfg->mark;
	bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	return 1;
}
