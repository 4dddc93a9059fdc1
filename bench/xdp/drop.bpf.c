// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/* The XDP_DROP ceiling of the benchmarks: count and drop every frame. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline int count_frame(int action)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&dropped, &key);

	if (count)
		*count += 1;
	return action;
}

SEC("xdp")
int vxdecap_bench_drop(struct xdp_md *ctx)
{
	return count_frame(XDP_DROP);
}

/* Passes everything: makes a veth peer accept redirected frames for skb-path tools. */
SEC("xdp")
int vxdecap_bench_pass(struct xdp_md *ctx)
{
	return count_frame(XDP_PASS);
}

/*
 * The cheapest forwarder the relay rig allows: every frame to one egress
 * with fixed MACs, nothing parsed or rewritten beyond them. What a
 * forwarder costs above this is its own work; the rig's receive, redirect
 * and sink cost this much for any forwarder. Set by the loader.
 */
const volatile __u32 redirect_ifindex = 0;
const volatile __u8 redirect_macs[12] = {};

SEC("xdp")
int vxdecap_bench_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + 12 > end)
		return count_frame(XDP_DROP);
	__builtin_memcpy(data, (const void *)redirect_macs, 12);
	count_frame(XDP_PASS);
	return bpf_redirect(redirect_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
