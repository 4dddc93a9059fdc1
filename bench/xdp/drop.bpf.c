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

char LICENSE[] SEC("license") = "Dual MIT/GPL";
