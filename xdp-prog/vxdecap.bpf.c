// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/*
 * vxdecap steering program: send UDP datagrams for the configured
 * VXLAN and GENEVE ports to the AF_XDP socket of the rx queue they arrived on,
 * and pass everything else to the kernel so management traffic keeps
 * working. The worker in user space validates and decapsulates; this
 * program only steers, so it stays small and cheap.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "vxdecap_shared.h"
#include "common.h"

#define IPV4_MF 0x2000
#define IPV4_OFFSET_MASK 0x1fff

/* Set by the loader before the program is loaded (rodata). Ports in host order. */
const volatile __u16 vxd_ports[VXD_MAX_PORTS] = { 4789 };
const volatile __u32 vxd_port_count = 1;
const volatile __u16 vxd_geneve_ports[VXD_MAX_PORTS] = { 6081 };
const volatile __u32 vxd_geneve_port_count = 1;
/* 1: outer IPv4 fragments of steered datagrams go to AF_XDP for reassembly. */
const volatile __u32 vxd_steer_fragments = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VXD_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} vxd_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXD_MAX_DEVICES);
	__type(key, __u32);
	__type(value, struct vxd_device);
} vxd_devices SEC(".maps");

/* One row per receive device, and a last one for devices without an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXD_MAX_DEVICES + 1);
	__type(key, __u32);
	__type(value, struct vxd_device_stats);
} vxd_device_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXD_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} vxd_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VXD_MAX_FRAG_FLOWS);
	__type(key, struct vxd_frag_key);
	__type(value, __u8);
} vxd_frag_seen SEC(".maps");

static __always_inline int count(__u32 counter, int action)
{
	__u64 *value = bpf_map_lookup_elem(&vxd_counters, &counter);

	if (value)
		*value += 1;
	return action;
}

/* The tunnel a port carries: VXD_TUNNEL_VXLAN, VXD_TUNNEL_GENEVE, or 0 when not configured. */
static __always_inline int port_configured(__u16 port)
{
#pragma unroll
	for (int i = 0; i < VXD_MAX_PORTS; i++) {
		if (i < vxd_port_count && vxd_ports[i] == port)
			return VXD_TUNNEL_VXLAN;
	}
#pragma unroll
	for (int i = 0; i < VXD_MAX_PORTS; i++) {
		if (i < vxd_geneve_port_count && vxd_geneve_ports[i] == port)
			return VXD_TUNNEL_GENEVE;
	}
	return 0;
}

/*
 * Puts a vxd_rx_meta record in front of the frame and redirects it to the
 * socket in XSKMAP slot `slot`. Should the socket go away in between (shutdown clears the
 * XSKMAP), the record is taken off again and the kernel gets the frame as
 * it arrived.
 */
static __always_inline int redirect_with_meta(struct xdp_md *ctx, __u32 slot, __u32 vxlan_offset)
{
	__u64 now = bpf_ktime_get_ns();
	struct vxd_rx_meta *meta;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*meta)))
		return count(VXD_CTR_PASS_NO_HEADROOM, XDP_PASS);
	meta = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > (void *)(long)ctx->data_end) {
		bpf_xdp_adjust_head(ctx, (int)sizeof(*meta));
		return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
	}
	meta->rx_ns = now;
	meta->magic = VXD_META_MAGIC;
	/* VXD_WHERE: the offset in the low 16 bits, the VXD_TUNNEL_* above. */
	meta->vxlan_offset = vxlan_offset & 0xffff;
	meta->tunnel = vxlan_offset >> 16;
	meta->reserved = 0;
	/* Flags 0: a missing socket returns XDP_ABORTED rather than passing the record on. */
	if (bpf_redirect_map(&vxd_xsks, slot, 0) == XDP_REDIRECT)
		return count(VXD_CTR_REDIRECTED, XDP_REDIRECT);
	bpf_xdp_adjust_head(ctx, (int)sizeof(*meta));
	return count(VXD_CTR_PASS_NO_SOCKET, XDP_PASS);
}

/*
 * The socket is chosen by (ingress device, rx queue): an AF_XDP socket takes
 * frames only from the device and queue it is bound to (xsk_rcv_check), and
 * on Azure the program runs on the VF as well as on netvsc. Without a socket
 * for this pair the frame goes to the kernel untouched, counted.
 */
static __always_inline int steer(struct xdp_md *ctx, __u32 vxlan_offset)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 qid = ctx->rx_queue_index;
	struct vxd_device *dev = bpf_map_lookup_elem(&vxd_devices, &ifindex);
	__u32 row = dev ? dev->row : VXD_MAX_DEVICES;
	struct vxd_device_stats *stats = bpf_map_lookup_elem(&vxd_device_stats, &row);
	__u32 slot;
	int action;

	if (!dev || qid >= dev->queues)
		goto no_socket;
	slot = dev->slot_base + qid;
	if (!bpf_map_lookup_elem(&vxd_xsks, &slot))
		goto no_socket;
	action = redirect_with_meta(ctx, slot, vxlan_offset);
	if (stats && action == XDP_REDIRECT)
		stats->redirected += 1;
	else if (stats)
		stats->no_socket += 1;
	return action;
no_socket:
	if (stats)
		stats->no_socket += 1;
	return count(VXD_CTR_PASS_NO_SOCKET, XDP_PASS);
}

/* Checks the UDP header at `c` against the ports; returns -1 to go on
 * steering (`*tunnel` then says which tunnel the port carries), else the
 * action to return. */
static __always_inline int check_port(struct cursor *c, __u32 *tunnel)
{
	struct udphdr *udp = c->pos;

	if ((void *)(udp + 1) > c->end)
		return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
	*tunnel = port_configured(bpf_ntohs(udp->dest));
	if (!*tunnel)
		return count(VXD_CTR_PASS_PORT, XDP_PASS);
	return -1;
}

/* The VNI allowlist, for the VXLAN header after the UDP header at `c`. */
static __always_inline int check_vni(struct vxd_filter *f, struct cursor *c)
{
	struct udphdr *udp = c->pos;

	if ((void *)(udp + 1) > c->end)
		return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
	/* cut short: user space counts it as truncated_vxlan */
	if (!vni_allowed(f, (__u8 *)(udp + 1), c->end, 1))
		return count(VXD_CTR_DROP_VNI, XDP_DROP);
	return -1;
}

/*
 * Outer IPv4 fragments. A first fragment carries the UDP header: it is
 * checked like any datagram, and the decision is remembered under its
 * (source, destination, IP ID): steered, the fragments after it follow it
 * to AF_XDP; passed or dropped, the entry goes, so they reach the kernel.
 * A later fragment goes to AF_XDP only when the latest first fragment
 * under its key was steered; all others go to the kernel intact, which
 * reassembles its own traffic (a later fragment that overtook its first
 * one is therefore lost to us, and counted as a timeout or an ambiguous
 * fragment in user space if its first fragment comes).
 */
static __always_inline int steer_fragment(struct xdp_md *ctx, struct vxd_filter *f,
					  struct iphdr *ip, struct cursor *c)
{
	struct vxd_frag_key key = { .saddr = ip->saddr, .daddr = ip->daddr, .id = ip->id };
	__u32 tunnel = 0;
	__u8 one = 1;
	int verdict;

	if (!vxd_steer_fragments)
		return count(VXD_CTR_PASS_FRAGMENT, XDP_PASS);
	if ((ip->frag_off & bpf_htons(IPV4_OFFSET_MASK)) == 0) {
		verdict = check_port(c, &tunnel);
		if (verdict < 0 && !source_allowed_v4(f, ip->saddr))
			verdict = count(VXD_CTR_DROP_SOURCE, XDP_DROP);
		if (verdict < 0)
			verdict = check_vni(f, c);
		if (verdict >= 0) {
			bpf_map_delete_elem(&vxd_frag_seen, &key);
			return verdict;
		}
		bpf_map_update_elem(&vxd_frag_seen, &key, &one, BPF_ANY);
	} else if (!bpf_map_lookup_elem(&vxd_frag_seen, &key)) {
		return count(VXD_CTR_PASS_FRAGMENT, XDP_PASS);
	}
	count(VXD_CTR_FRAGMENT_STEERED, 0);
	return steer(ctx, 0);
}

SEC("xdp")
int vxdecap_steer(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct vxd_filter *f = filter();
	int proto = parse_ethernet(&c);
	__u32 tunnel = 0;
	int verdict;

	if (proto < 0)
		return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = c.pos;
		__u32 ihl;

		if ((void *)(ip + 1) > c.end)
			return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
		ihl = ip->ihl * 4;
		if (ip->version != 4 || ihl < sizeof(*ip))
			return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return count(VXD_CTR_PASS_NOT_UDP, XDP_PASS);
		c.pos = (void *)ip + ihl;
		if (ip->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET_MASK))
			return steer_fragment(ctx, f, ip, &c);
		verdict = check_port(&c, &tunnel);
		if (verdict >= 0)
			return verdict;
		if (!source_allowed_v4(f, ip->saddr))
			return count(VXD_CTR_DROP_SOURCE, XDP_DROP);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = c.pos;

		if ((void *)(ip6 + 1) > c.end)
			return count(VXD_CTR_PASS_MALFORMED, XDP_PASS);
		/* Extension headers are rare on an underlay; they go to the kernel. */
		if (ip6->nexthdr != IPPROTO_UDP)
			return count(VXD_CTR_PASS_NOT_UDP, XDP_PASS);
		c.pos = ip6 + 1;
		verdict = check_port(&c, &tunnel);
		if (verdict >= 0)
			return verdict;
		if (!source_allowed_v6(f, ip6))
			return count(VXD_CTR_DROP_SOURCE, XDP_DROP);
	} else {
		return count(VXD_CTR_PASS_NOT_IP, XDP_PASS);
	}
	verdict = check_vni(f, &c);
	if (verdict >= 0)
		return verdict;
	return steer(ctx, VXD_WHERE(c.pos + sizeof(struct udphdr) - (void *)(long)ctx->data, tunnel));
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
