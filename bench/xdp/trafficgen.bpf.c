// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/*
 * Traffic generator for the benchmarks, run with BPF_PROG_TEST_RUN in
 * live-frames mode (the mechanism xdp-trafficgen uses): every run of the
 * program sends the test frame out of `tx_ifindex`. Writes made to the
 * frame persist across runs, so the program rewrites the outer UDP source
 * port (the flow hash) and the inner UDP source port per frame to spread
 * `flows` flows.
 *
 * Each BPF_PROG_TEST_RUN call costs milliseconds of setup, so user space
 * makes few, large calls (millions of runs each) and this program decides
 * what is sent: it stops after `duration_ns` or `max_frames`, and with
 * `pps` set a token bucket keeps the rate smooth (frames over the budget
 * are dropped here, not sent). Once done, every further run is a cheap
 * XDP_DROP, and `done` tells user space to stop calling.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 tx_ifindex = 0;
const volatile __u64 pps = 0;		/* 0: flat out */
const volatile __u64 duration_ns = 0;	/* 0: no time limit */
const volatile __u64 max_frames = 0;	/* 0: no count limit */
const volatile __u32 flows = 1;
/*
 * 1: write the outer Ethernet and IPv4 headers (34 bytes, as 17 words in
 * network order) back before each frame. A forwarder under test (vxdecap
 * relay, a DNAT proxy) rewrites them in the very page that is sent again
 * (TTL, addresses, MACs), which would otherwise age the frames out.
 */
const volatile __u32 restore_outer = 0;
const volatile __u16 outer_header[17] = {};
/* Offsets of the outer and inner UDP source ports in the frame (0: leave alone). */
const volatile __u32 outer_sport_offset = 0;
const volatile __u32 inner_sport_offset = 0;

/*
 * Frame variants (IMIX): the test frame is the longest variant; variant v
 * is its first variant_len[v] bytes with the 16-bit words at patch_off[v][i]
 * set to patch_val[v][i] (lengths and checksums; offset 0 ends the list).
 * Frame n is variant schedule[n % schedule_len].
 */
#define MAX_VARIANTS 4
#define MAX_PATCHES 8
#define MAX_SCHEDULE 16
const volatile __u32 variants = 1;
const volatile __u32 variant_len[MAX_VARIANTS] = {};
const volatile __u16 patch_off[MAX_VARIANTS][MAX_PATCHES] = {};
const volatile __u16 patch_val[MAX_VARIANTS][MAX_PATCHES] = {};
const volatile __u32 schedule_len = 1;
const volatile __u8 schedule[MAX_SCHEDULE] = {};

/* Mirrored by `GenState` in bench/src/bin/vxdecap-bench/gen.rs. */
struct gen_state {
	__u64 sent;
	__u64 start_ns;	/* time of the first frame sent */
	__u64 last_ns;	/* time of the latest frame sent, or of the end */
	__u64 done;	/* the duration or count is reached */
	__u64 due_ps;	/* pacing: when the next frame is due, ps after start */
};

/* Pacing never sends more than this many frames back to back to catch up
 * (after the pause between two calls, say): a bounded token bucket. */
#define MAX_BURST 64

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} state SEC(".maps");

/* Writes a 16-bit word already in network byte order. */
static __always_inline void write_word(struct xdp_md *ctx, __u32 offset, __u16 value)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *p;

	if (offset == 0 || offset > 2048)
		return;
	p = data + offset;
	if ((void *)(p + 1) > end)
		return;
	*p = value;
}

/* Turns the frame into variant `v` (the context is reset to the longest
 * variant before every run; the bytes persist). */
static __always_inline int shape(struct xdp_md *ctx, __u32 v)
{
	int full = (int)(ctx->data_end - ctx->data);
	int i;

	if (v >= MAX_VARIANTS)
		return -1;
	if ((int)variant_len[v] != full &&
	    bpf_xdp_adjust_tail(ctx, (int)variant_len[v] - full))
		return -1;
	for (i = 0; i < MAX_PATCHES; i++) {
		if (patch_off[v][i] == 0)
			break;
		write_word(ctx, patch_off[v][i], patch_val[v][i]);
	}
	return 0;
}

SEC("xdp")
int vxdecap_trafficgen(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct gen_state *st = bpf_map_lookup_elem(&state, &key);
	__u32 flow = 0;
	__u64 now = 0;

	if (!st)
		return XDP_ABORTED;
	if (st->done)
		return XDP_DROP;
	if (max_frames && st->sent >= max_frames) {
		st->done = 1;
		return XDP_DROP;
	}
	/* The clock is read per frame only when pacing; otherwise once every
	 * 64 frames, which bounds the overshoot of the duration to 64 frames. */
	if (pps || (st->sent & 63) == 0 || !st->start_ns) {
		now = bpf_ktime_get_ns();
		if (!st->start_ns)
			st->start_ns = now;
		st->last_ns = now;
		if (duration_ns && now - st->start_ns >= duration_ns) {
			st->done = 1;
			return XDP_DROP;
		}
		if (pps) {
			__u64 now_ps = (now - st->start_ns) * 1000;
			__u64 interval_ps = 1000000000000ULL / pps;

			if (now_ps < st->due_ps)
				return XDP_DROP;
			if (st->due_ps + MAX_BURST * interval_ps < now_ps)
				st->due_ps = now_ps - MAX_BURST * interval_ps;
			st->due_ps += interval_ps;
		}
	}
	if (restore_outer) {
		void *data = (void *)(long)ctx->data;
		__u16 *word = data;

		if ((void *)(word + 17) > (void *)(long)ctx->data_end)
			return XDP_ABORTED;
#pragma unroll
		for (int i = 0; i < 17; i++)
			word[i] = outer_header[i];
	}
	if (variants > 1 &&
	    shape(ctx, schedule[(__u32)(st->sent % schedule_len) & (MAX_SCHEDULE - 1)]))
		return XDP_ABORTED;
	flow = flows > 1 ? (__u32)(st->sent % flows) : 0;
	st->sent += 1;
	write_word(ctx, outer_sport_offset, bpf_htons(49152 + (flow & 0x3fff)));
	write_word(ctx, inner_sport_offset, bpf_htons(10000 + flow));
	return bpf_redirect(tx_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
