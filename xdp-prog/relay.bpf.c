// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/*
 * vxdecap relay program: forward mirrored VXLAN and GENEVE to one of N collectors
 * without a trip through the kernel's stack. For UDP to the configured
 * tunnel ports it picks the collector by a symmetric hash of the inner
 * flow through a consistent table that user space fills, rewrites the
 * outer destination to the collector and the outer source to this host's
 * address towards it (IPv4 or IPv6), decrements the TTL or hop limit as a
 * router does, patches the IPv4 (and a non-zero UDP) checksum
 * incrementally, takes the MACs from the kernel's FIB and sends the frame
 * back out (XDP_TX) or out of the egress interface (bpf_redirect). Everything it does not relay goes to
 * the kernel untouched, under a named counter.
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
#include "relay_shared.h"
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define IPV4_MF 0x2000
#define IPV4_OFFSET_MASK 0x1fff
#define VXLAN_LEN 8
#define VXLAN_FLAG_I 0x08
#define GENEVE_LEN 8
#define ETH_P_TEB 0x6558
#define HASH_SEED 0x76786472 /* "vxdr" */
#define IPPROTO_SCTP_ 132
#define IPV6_FRAGMENT 44

/* Set by the loader before the program is loaded (rodata). Ports in host order. */
const volatile __u16 vxr_ports[VXR_MAX_PORTS] = { 4789 };
const volatile __u32 vxr_port_count = 1;
const volatile __u16 vxr_geneve_ports[VXR_MAX_PORTS] = { 6081 };
const volatile __u32 vxr_geneve_port_count = 1;
/* Most tunnel headers read through (the capture's --max-tunnel-depth): 2 peels VXLAN in GENEVE. */
const volatile __u32 vxr_max_depth = 2;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXR_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} vxr_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXR_MAX_DESTS);
	__type(key, __u32);
	__type(value, __u64);
} vxr_dest_packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXR_MAX_DESTS);
	__type(key, __u32);
	__type(value, __u64);
} vxr_dest_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VXR_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vxr_dest);
} vxr_dests SEC(".maps");

/* Two consistent-hash tables (slot -> collector index); vxr_config says which is in use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * VXR_TABLE_STRIDE);
	__type(key, __u32);
	__type(value, __u32);
} vxr_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxr_config);
} vxr_config SEC(".maps");

/* Per CPU, the FIB's last answer for each collector (see struct vxr_fib_entry). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXR_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vxr_fib_entry);
} vxr_fib_cache SEC(".maps");

/* The generation of the FIB cache in force: 0 turns the cache off. Only user space writes it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} vxr_fib_generation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXR_FIB_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} vxr_fib_counters SEC(".maps");

/* Outer datagrams whose first fragment was relayed: (source, destination, IP ID) -> collector. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VXR_MAX_FRAG_FLOWS);
	__type(key, struct vxd_frag_key);
	__type(value, __u32);
} vxr_frag_dest SEC(".maps");

static __always_inline int count(__u32 counter, int action)
{
	__u64 *value = bpf_map_lookup_elem(&vxr_counters, &counter);

	if (value)
		*value += 1;
	return action;
}

static __always_inline void add(void *map, __u32 index, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(map, &index);

	if (value)
		*value += n;
}

/* The tunnel a port (host order) carries: VXD_TUNNEL_VXLAN, VXD_TUNNEL_GENEVE, or 0. No early
 * return: with one, clang-19 failed to unroll the loop once inlined at several call sites. (A
 * port is never both: PortSet refuses it.) */
static __always_inline int port_configured(__u16 port)
{
	int tunnel = 0;

#pragma unroll
	for (int i = 0; i < VXR_MAX_PORTS; i++) {
		if (i < vxr_port_count && vxr_ports[i] == port)
			tunnel = VXD_TUNNEL_VXLAN;
		if (i < vxr_geneve_port_count && vxr_geneve_ports[i] == port)
			tunnel = VXD_TUNNEL_GENEVE;
	}
	return tunnel;
}

/* murmur3's 32-bit mixing steps: cheap, and every input bit reaches the slot. */
static __always_inline __u32 rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 finish(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

/* The same value for (a, b) and (b, a): the smaller first. */
static __always_inline __u32 mix_pair(__u32 h, __u32 a, __u32 b)
{
	return a < b ? mix(mix(h, a), b) : mix(mix(h, b), a);
}

static __always_inline __u32 fold6(__u32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}

/*
 * A hash of the IPv4 or IPv6 packet at `c` (`proto`, network order, says
 * which), the same for both directions: the address pair and the port
 * pair each in order. Fragments of the inner datagram (the first one too)
 * use the address pair alone, so that all of them go where any of them
 * goes. Whether the packet came behind an Ethernet header or bare (GENEVE
 * carries both), a flow hashes the same.
 */
static __always_inline __u32 ip_flow_hash(struct cursor *c, int proto)
{
	__u32 h = HASH_SEED;
	__u16 *ports;
	__u8 l4;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = c->pos;
		__u32 ihl;

		if ((void *)(ip + 1) > c->end)
			return h;
		h = mix_pair(h, ip->saddr, ip->daddr);
		ihl = ip->ihl * 4;
		if (ip->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET_MASK) || ihl < sizeof(*ip))
			return finish(h);
		l4 = ip->protocol;
		ports = (void *)ip + ihl;
	} else {
		struct ipv6hdr *ip6 = c->pos;

		if ((void *)(ip6 + 1) > c->end)
			return h;
		h = mix_pair(h, fold6(ip6->saddr.in6_u.u6_addr32), fold6(ip6->daddr.in6_u.u6_addr32));
		if (ip6->nexthdr == IPV6_FRAGMENT)
			return finish(h);
		l4 = ip6->nexthdr;
		ports = (void *)(ip6 + 1);
	}
	h = mix(h, l4);
	if ((l4 == IPPROTO_TCP || l4 == IPPROTO_UDP || l4 == IPPROTO_SCTP_) &&
	    (void *)(ports + 2) <= c->end)
		h = mix_pair(h, ports[0], ports[1]);
	return finish(h);
}

/*
 * A hash of the inner Ethernet frame at `c` (after a VXLAN header, or
 * GENEVE's 0x6558): its IP flow (ip_flow_hash), or for traffic that is not
 * IP its MAC pair.
 */
static __always_inline __u32 inner_flow_hash(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	int proto = parse_ethernet(c);

	if (proto < 0)
		return HASH_SEED;
	if (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6))
		return ip_flow_hash(c, proto);
	/* The first four bytes of each MAC suffice to keep a pair together. */
	return finish(mix(mix_pair(HASH_SEED, *(__u32 *)eth->h_dest, *(__u32 *)eth->h_source),
			  proto));
}

/*
 * A tunnel inside GENEVE, as the capture peels it: the IPv4 packet at `c`
 * (GENEVE's bare IPv4, or behind its inner Ethernet header) is a whole UDP
 * datagram to a VXLAN port with the I flag and an Ethernet header after
 * it, as AWS Traffic Mirroring sends into a Gateway Load Balancer. Returns
 * 1 with c->pos at that mirrored frame, 0 when the packet is not such a
 * tunnel (it is then the flow itself), -1 when it is one past the depth
 * limit.
 */
static __always_inline int nested_vxlan(struct cursor *c)
{
	struct iphdr *ip = c->pos;
	struct udphdr *udp;
	__u8 *vxlan;
	__u32 ihl;

	if ((void *)(ip + 1) > c->end)
		return 0;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip) || ip->protocol != IPPROTO_UDP ||
	    ip->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET_MASK))
		return 0;
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > c->end || port_configured(bpf_ntohs(udp->dest)) != VXD_TUNNEL_VXLAN)
		return 0;
	if (vxr_max_depth < 2)
		return -1;
	vxlan = (__u8 *)(udp + 1);
	if ((void *)(vxlan + VXLAN_LEN + ETH_HLEN) > c->end || !(vxlan[0] & VXLAN_FLAG_I))
		return 0;
	c->pos = vxlan + VXLAN_LEN;
	return 1;
}

/*
 * The flow hash of what the GENEVE header at `c` carries: -1 with `*hash`
 * set, or the counter to pass the frame under. Version 0 and options
 * within the packet (skipped by Opt Len: their contents do not matter
 * here), then by protocol: an Ethernet frame, or bare IPv4/IPv6; in either,
 * IPv4/UDP to a VXLAN port is peeled to the mirrored frame inside. What the
 * capture would refuse (cut short, another version or protocol, a payload
 * too short for its header) is passed, counted, and never hashed by bytes
 * that are not a flow's.
 */
static __always_inline int geneve_hash(struct cursor *c, __u32 *hash)
{
	__u8 *geneve = c->pos;
	struct cursor inner;
	__u16 proto;
	int nested;

	if ((void *)(geneve + GENEVE_LEN) > c->end || geneve[0] >> 6 != 0)
		return VXR_CTR_PASS_GENEVE_MALFORMED;
	proto = *(__u16 *)(geneve + 2);
	inner.pos = geneve + GENEVE_LEN + (geneve[0] & 0x3f) * 4;
	inner.end = c->end;
	if (inner.pos > inner.end)
		return VXR_CTR_PASS_GENEVE_MALFORMED;
	c->pos = inner.pos;
	if (proto == bpf_htons(ETH_P_TEB)) {
		int ethertype;

		if ((void *)((__u8 *)c->pos + ETH_HLEN) > c->end)
			return VXR_CTR_PASS_GENEVE_MALFORMED;
		ethertype = parse_ethernet(&inner);
		nested = ethertype == bpf_htons(ETH_P_IP) ? nested_vxlan(&inner) : 0;
		if (nested < 0)
			return VXR_CTR_PASS_TUNNEL_DEPTH;
		*hash = inner_flow_hash(nested ? &inner : c);
		return -1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		if ((void *)((__u8 *)c->pos + sizeof(struct iphdr)) > c->end)
			return VXR_CTR_PASS_GENEVE_MALFORMED;
		nested = nested_vxlan(&inner);
		if (nested < 0)
			return VXR_CTR_PASS_TUNNEL_DEPTH;
		*hash = nested ? inner_flow_hash(&inner) : ip_flow_hash(c, proto);
		return -1;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)((__u8 *)c->pos + sizeof(struct ipv6hdr)) > c->end)
			return VXR_CTR_PASS_GENEVE_MALFORMED;
		*hash = ip_flow_hash(c, proto);
		return -1;
	}
	return VXR_CTR_PASS_GENEVE_MALFORMED;
}

/* The collector for `hash` in the table in use; -1 without one. */
static __always_inline int pick(__u32 hash)
{
	__u32 zero = 0;
	struct vxr_config *cfg = bpf_map_lookup_elem(&vxr_config, &zero);
	__u32 slot;
	__u32 *dest;

	if (!cfg || cfg->dests == 0)
		return -1;
	slot = (cfg->table & 1) * VXR_TABLE_STRIDE + hash % VXR_TABLE_SIZE;
	dest = bpf_map_lookup_elem(&vxr_table, &slot);
	if (!dest || *dest >= VXR_MAX_DESTS)
		return -1;
	return *dest;
}

static __always_inline __u16 csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a 32-bit field (any byte order, as stored). */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 c = (__u16)~check;

	c += (__u16)~(from & 0xffff);
	c += (__u16)~(from >> 16);
	c += to & 0xffff;
	c += to >> 16;
	return ~csum_fold(c);
}

/* The FIB's verdict as a counter to pass under, or -1 when the frame can go. */
static __always_inline int fib_refusal(long rc)
{
	/* The kernel looks up only for an interface that forwards (user space checks at start). */
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return VXR_CTR_PASS_FORWARDING_OFF;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return VXR_CTR_PASS_NO_NEIGH;
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return VXR_CTR_PASS_MTU;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return VXR_CTR_PASS_NO_ROUTE;
	return -1;
}

/*
 * This CPU's cached next hop for collector `index`, if it answers a frame
 * of `tot_len` bytes with `tos` from `ingress`: the generation has not
 * moved since it was stored (no route, neighbour, link, address or
 * forwarding change since), and the frame fits the MTU the lookup checked.
 * `generation` gets the one in force, read before any lookup, so that an
 * answer stored under it is stale as soon as user space moves it.
 */
static __always_inline struct vxr_fib_entry *cached_hop(__u32 index, __u32 ingress, __u8 tos,
							__u16 tot_len, __u64 *generation)
{
	__u32 zero = 0;
	__u64 *current = bpf_map_lookup_elem(&vxr_fib_generation, &zero);
	struct vxr_fib_entry *hop;

	*generation = current ? *current : 0;
	if (*generation == 0)
		return 0;
	hop = bpf_map_lookup_elem(&vxr_fib_cache, &index);
	if (!hop || hop->generation != *generation || hop->ingress != ingress || hop->tos != tos ||
	    tot_len > hop->mtu)
		return 0;
	add(&vxr_fib_counters, VXR_FIB_CTR_HIT, 1);
	return hop;
}

/*
 * Asks the FIB (`fib` filled in by the caller) and, when it says the frame
 * can go, puts its answer into `hop` and into this CPU's cache under
 * `generation`. The FIB's refusal as a counter, or -1.
 */
static __always_inline int look_up_hop(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __u32 index,
				       __u8 tos, __u64 generation, struct vxr_fib_entry *hop)
{
	struct vxr_fib_entry *slot;
	int refusal;

	add(&vxr_fib_counters, VXR_FIB_CTR_LOOKUP, 1);
	refusal = fib_refusal(bpf_fib_lookup(ctx, fib, sizeof(*fib), 0));
	if (refusal >= 0)
		return refusal;
	hop->generation = generation;
	hop->ingress = ctx->ingress_ifindex;
	hop->egress = fib->ifindex;
	/*
	 * On success the kernel leaves the MTU it checked in mtu_result (a
	 * union with tot_len); were it not set, it would still hold this
	 * frame's length: a smaller bound, never a wrong one.
	 */
	hop->mtu = fib->mtu_result;
	hop->tos = tos;
	hop->reserved = 0;
	__builtin_memcpy(hop->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(hop->smac, fib->smac, ETH_ALEN);
	slot = bpf_map_lookup_elem(&vxr_fib_cache, &index);
	if (slot && generation != 0)
		__builtin_memcpy(slot, hop, sizeof(*hop));
	return -1;
}

/* Sends the frame out to `hop`, counting it for collector `index`. */
static __always_inline int send(struct xdp_md *ctx, struct ethhdr *eth, struct vxr_fib_entry *hop,
				__u32 index, __u32 relayed)
{
	__builtin_memcpy(eth->h_dest, hop->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, hop->smac, ETH_ALEN);
	add(&vxr_dest_packets, index, 1);
	add(&vxr_dest_bytes, index, (__u64)(ctx->data_end - ctx->data));
	if (hop->egress == ctx->ingress_ifindex)
		return count(relayed, XDP_TX);
	if (relayed == VXR_CTR_TX)
		relayed = VXR_CTR_REDIRECT;
	return count(relayed, bpf_redirect(hop->egress, 0));
}

/*
 * Sends the IPv4 frame whose header is `ip` to collector `index`: the FIB
 * (or this CPU's cache of its answer) gives the next hop and the egress
 * interface; nothing is changed unless the frame goes. `udp` is the UDP
 * header when this fragment carries it.
 */
static __always_inline int relay_v4(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
				    struct udphdr *udp, __u32 index, __u32 relayed)
{
	struct vxr_dest *dest = bpf_map_lookup_elem(&vxr_dests, &index);
	__u16 tot_len = bpf_ntohs(ip->tot_len);
	struct vxr_fib_entry found, *hop;
	__u32 old_saddr, old_daddr;
	__u64 generation;
	__u32 c;

	if (!dest || dest->family == 0)
		return count(VXR_CTR_PASS_NO_COLLECTOR, XDP_PASS);
	if (dest->family != 4)
		return count(VXR_CTR_PASS_FAMILY, XDP_PASS);
	if (ip->ttl <= 1)
		return count(VXR_CTR_PASS_TTL, XDP_PASS);
	hop = cached_hop(index, ctx->ingress_ifindex, ip->tos, tot_len, &generation);
	if (!hop) {
		struct bpf_fib_lookup fib = {};
		int refusal;

		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = IPPROTO_UDP;
		fib.tot_len = tot_len;
		fib.ifindex = ctx->ingress_ifindex;
		fib.ipv4_src = dest->saddr;
		fib.ipv4_dst = dest->daddr;
		refusal = look_up_hop(ctx, &fib, index, ip->tos, generation, &found);
		if (refusal >= 0)
			return count(refusal, XDP_PASS);
		hop = &found;
	}

	/*
	 * The checksum is patched as a forwarding kernel patches it: never to
	 * 0xffff (csum_replace4() and ip_decrease_ttl() keep it in 0..0xfffe),
	 * so it comes out bit for bit as a DNAT proxy's.
	 */
	old_saddr = ip->saddr;
	old_daddr = ip->daddr;
	ip->saddr = dest->saddr;
	ip->daddr = dest->daddr;
	ip->check = csum_replace4(ip->check, old_saddr, dest->saddr);
	ip->check = csum_replace4(ip->check, old_daddr, dest->daddr);
	/* TTL - 1, as ip_decrease_ttl(): the TTL is the high byte of its 16-bit word. */
	ip->ttl -= 1;
	c = ip->check + (__u32)bpf_htons(0x0100);
	ip->check = (__u16)(c + (c >= 0xffff));
	/* A UDP checksum of 0 (none, as VXLAN over IPv4 sends) stays 0; another covers the addresses. */
	if (udp && udp->check) {
		__u16 check = csum_replace4(udp->check, old_saddr, dest->saddr);

		check = csum_replace4(check, old_daddr, dest->daddr);
		udp->check = check ? check : 0xffff;
	}
	return send(ctx, eth, hop, index, relayed);
}

/*
 * The IPv6 counterpart of relay_v4: no header checksum, the hop limit
 * decremented, and the UDP checksum (mandatory over IPv6, but 0 is allowed
 * for tunnels, RFC 6935, and stays 0) patched for the new addresses.
 */
static __always_inline int relay_v6(struct xdp_md *ctx, struct ethhdr *eth, struct ipv6hdr *ip6,
				    struct udphdr *udp, __u32 index)
{
	struct vxr_dest *dest = bpf_map_lookup_elem(&vxr_dests, &index);
	__u16 tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	struct vxr_fib_entry found, *hop;
	__u32 old_saddr[4], old_daddr[4];
	__u64 generation;

	if (!dest || dest->family == 0)
		return count(VXR_CTR_PASS_NO_COLLECTOR, XDP_PASS);
	if (dest->family != 6)
		return count(VXR_CTR_PASS_FAMILY, XDP_PASS);
	if (ip6->hop_limit <= 1)
		return count(VXR_CTR_PASS_TTL, XDP_PASS);
	/* No flow label or traffic class goes into the lookup: the TOS key is 0. */
	hop = cached_hop(index, ctx->ingress_ifindex, 0, tot_len, &generation);
	if (!hop) {
		struct bpf_fib_lookup fib = {};
		int refusal;

		fib.family = AF_INET6;
		fib.l4_protocol = IPPROTO_UDP;
		fib.tot_len = tot_len;
		fib.ifindex = ctx->ingress_ifindex;
		__builtin_memcpy(fib.ipv6_src, dest->saddr6, 16);
		__builtin_memcpy(fib.ipv6_dst, dest->daddr6, 16);
		refusal = look_up_hop(ctx, &fib, index, 0, generation, &found);
		if (refusal >= 0)
			return count(refusal, XDP_PASS);
		hop = &found;
	}

	__builtin_memcpy(old_saddr, &ip6->saddr, 16);
	__builtin_memcpy(old_daddr, &ip6->daddr, 16);
	__builtin_memcpy(&ip6->saddr, dest->saddr6, 16);
	__builtin_memcpy(&ip6->daddr, dest->daddr6, 16);
	ip6->hop_limit -= 1;
	if (udp->check) {
		__u16 check = udp->check;

#pragma unroll
		for (int i = 0; i < 4; i++) {
			check = csum_replace4(check, old_saddr[i], dest->saddr6[i]);
			check = csum_replace4(check, old_daddr[i], dest->daddr6[i]);
		}
		udp->check = check ? check : 0xffff;
	}
	return send(ctx, eth, hop, index, VXR_CTR_TX);
}

/*
 * The collector for the tunnel after the UDP header `udp` (`tunnel` says
 * which): its index, or -1 with `*refusal` set to the counter to pass or
 * drop the frame under. The VNI allowlist reads the outermost tunnel's
 * VNI (VXLAN and GENEVE both keep it in bytes 4..6), as the capture does.
 */
static __always_inline int choose(struct vxd_filter *f, struct udphdr *udp, void *end, int tunnel,
				  int *refusal)
{
	struct cursor c = { .pos = udp + 1, .end = end };
	__u32 hash;
	int index;

	/* Cut short: cannot tell, and a collector would count it as truncated anyway. */
	if (!vni_allowed(f, c.pos, end, 0)) {
		*refusal = VXR_CTR_DROP_VNI;
		return -1;
	}
	if (tunnel == VXD_TUNNEL_GENEVE) {
		*refusal = geneve_hash(&c, &hash);
		if (*refusal >= 0)
			return -1;
	} else {
		c.pos += VXLAN_LEN;
		hash = inner_flow_hash(&c);
	}
	index = pick(hash);
	*refusal = VXR_CTR_PASS_NO_COLLECTOR;
	return index;
}

/* Counts a frame choose() refused, and says what to do with it. */
static __always_inline int refuse(int refusal)
{
	return count(refusal, refusal == VXR_CTR_DROP_VNI ? XDP_DROP : XDP_PASS);
}

SEC("xdp")
int vxdecap_relay(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth = c.pos;
	struct vxd_filter *f = filter();
	struct vxd_frag_key key = {};
	struct udphdr *udp;
	struct iphdr *ip;
	int index, tunnel, refusal;
	__u32 ihl;

	if ((void *)(eth + 1) > c.end)
		return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
	if (is_vlan(eth->h_proto))
		return count(VXR_CTR_PASS_VLAN, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > c.end)
			return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
		/* Extension headers (fragments among them) are rare on an underlay: the kernel's. */
		if (ip6->nexthdr != IPPROTO_UDP)
			return count(VXR_CTR_PASS_NOT_UDP, XDP_PASS);
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > c.end)
			return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
		tunnel = port_configured(bpf_ntohs(udp->dest));
		if (!tunnel)
			return count(VXR_CTR_PASS_PORT, XDP_PASS);
		if (!source_allowed_v6(f, ip6))
			return count(VXR_CTR_DROP_SOURCE, XDP_DROP);
		index = choose(f, udp, c.end, tunnel, &refusal);
		if (index < 0)
			return refuse(refusal);
		return relay_v6(ctx, eth, ip6, udp, index);
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(VXR_CTR_PASS_NOT_IP, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > c.end)
		return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
	if (ip->protocol != IPPROTO_UDP)
		return count(VXR_CTR_PASS_NOT_UDP, XDP_PASS);
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.id = ip->id;
	if (ip->frag_off & bpf_htons(IPV4_OFFSET_MASK)) {
		/* A later fragment: where its first fragment went, or to the kernel. */
		__u32 *dest = bpf_map_lookup_elem(&vxr_frag_dest, &key);

		if (!dest)
			return count(VXR_CTR_PASS_FRAGMENT, XDP_PASS);
		return relay_v4(ctx, eth, ip, 0, *dest, VXR_CTR_FRAGMENT);
	}
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > c.end)
		return count(VXR_CTR_PASS_MALFORMED, XDP_PASS);
	tunnel = port_configured(bpf_ntohs(udp->dest));
	if (!tunnel) {
		if (ip->frag_off & bpf_htons(IPV4_MF))
			bpf_map_delete_elem(&vxr_frag_dest, &key);
		return count(VXR_CTR_PASS_PORT, XDP_PASS);
	}
	if (!source_allowed_v4(f, ip->saddr))
		return count(VXR_CTR_DROP_SOURCE, XDP_DROP);
	index = choose(f, udp, c.end, tunnel, &refusal);
	if (index < 0)
		return refuse(refusal);
	if (ip->frag_off & bpf_htons(IPV4_MF)) {
		__u32 value = index;

		bpf_map_update_elem(&vxr_frag_dest, &key, &value, BPF_ANY);
	}
	return relay_v4(ctx, eth, ip, udp, index, VXR_CTR_TX);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
