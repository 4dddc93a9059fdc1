// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/*
 * Traffic generator for the benchmarks, run with BPF_PROG_TEST_RUN in
 * live-frames mode (the mechanism xdp-trafficgen uses): every run of the
 * program sends the test frame out of `tx_ifindex`. Writes made to the
 * frame persist across runs, so the program rewrites the outer UDP source
 * port (the flow hash) and the inner UDP source port per frame to spread
 * `flows` flows. With `pps` set, a token bucket in the program keeps the
 * rate smooth: frames over the budget are dropped here, not sent (one
 * BPF_PROG_TEST_RUN call costs tens of milliseconds to set up, too coarse
 * for pacing from user space).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 tx_ifindex = 0;
const volatile __u64 pps = 0; /* 0: flat out */
const volatile __u32 flows = 1;
/* Offsets of the outer and inner UDP source ports in the frame (0: leave alone). */
const volatile __u32 outer_sport_offset = 0;
const volatile __u32 inner_sport_offset = 0;

struct gen_state {
	__u64 sent;
	__u64 start_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} state SEC(".maps");

static __always_inline void write_port(struct xdp_md *ctx, __u32 offset, __u16 port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *p;

	if (offset == 0 || offset > 2048)
		return;
	p = data + offset;
	if ((void *)(p + 1) > end)
		return;
	*p = bpf_htons(port);
}

SEC("xdp")
int vxdecap_trafficgen(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct gen_state *st = bpf_map_lookup_elem(&state, &key);
	__u32 flow = 0;

	if (!st)
		return XDP_ABORTED;
	if (pps) {
		__u64 now = bpf_ktime_get_ns();

		if (!st->start_ns)
			st->start_ns = now;
		if (st->sent >= (now - st->start_ns) * pps / 1000000000ULL)
			return XDP_DROP;
	}
	flow = flows > 1 ? (__u32)(st->sent % flows) : 0;
	st->sent += 1;
	write_port(ctx, outer_sport_offset, 49152 + (flow & 0x3fff));
	write_port(ctx, inner_sport_offset, 10000 + flow);
	return bpf_redirect(tx_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
