// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
/*
 * What the capture's program (vxdecap.bpf.c) and the relay's (relay.bpf.c)
 * share: the parsing cursor, Ethernet with its VLAN tags, and the
 * allowlists under one set of names and layouts (steer/allow_maps.rs
 * writes them for both). Included after vxdecap_shared.h.
 */
#ifndef VXDECAP_COMMON_H
#define VXDECAP_COMMON_H

#define ETH_P_8021AD_OLD 0x9100

struct cursor {
	void *pos;
	void *end;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxd_filter);
} vxd_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VXD_MAX_ALLOW_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vxd_lpm_v4);
	__type(value, __u8);
} vxd_allow_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VXD_MAX_ALLOW_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vxd_lpm_v6);
	__type(value, __u8);
} vxd_allow_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXD_MAX_ALLOW_VNIS);
	__type(key, __u32);
	__type(value, __u8);
} vxd_allow_vni SEC(".maps");

static __always_inline int is_vlan(__u16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD) ||
	       proto == bpf_htons(ETH_P_8021AD_OLD);
}

/* Ethernet and up to two VLAN tags at `c`: the EtherType after them (network order), with
 * c->pos past them; -1 when they are cut short. */
static __always_inline int parse_ethernet(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	__u16 proto;

	if ((void *)(eth + 1) > c->end)
		return -1;
	proto = eth->h_proto;
	c->pos = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__u16 *tag = c->pos;

		if (!is_vlan(proto))
			break;
		if ((void *)(tag + 2) > c->end)
			return -1;
		proto = tag[1];
		c->pos = tag + 2;
	}
	return proto;
}

static __always_inline struct vxd_filter *filter(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vxd_filter, &zero);
}

static __always_inline int source_allowed_v4(struct vxd_filter *f, __u32 saddr)
{
	struct vxd_lpm_v4 key = { .prefixlen = 32 };

	if (!f || !f->sources)
		return 1;
	__builtin_memcpy(key.addr, &saddr, 4);
	return bpf_map_lookup_elem(&vxd_allow_v4, &key) != 0;
}

static __always_inline int source_allowed_v6(struct vxd_filter *f, struct ipv6hdr *ip6)
{
	struct vxd_lpm_v6 key = { .prefixlen = 128 };

	if (!f || !f->sources)
		return 1;
	__builtin_memcpy(key.addr, &ip6->saddr, 16);
	return bpf_map_lookup_elem(&vxd_allow_v6, &key) != 0;
}

/* 1 unless the VNI allowlist is on and the VXLAN or GENEVE header at `tunnel` carries a VNI
 * outside it (both keep it in bytes 4..6); `if_cut` when the header is cut short. */
static __always_inline int vni_allowed(struct vxd_filter *f, __u8 *tunnel, void *end, int if_cut)
{
	__u32 vni;

	if (!f || !f->vnis)
		return 1;
	if ((void *)(tunnel + 8) > end)
		return if_cut;
	vni = ((__u32)tunnel[4] << 16) | ((__u32)tunnel[5] << 8) | tunnel[6];
	return bpf_map_lookup_elem(&vxd_allow_vni, &vni) != 0;
}

#endif
