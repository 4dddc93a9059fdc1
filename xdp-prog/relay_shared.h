/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Definitions shared by the relay's XDP program (relay.bpf.c) and its Rust
 * loader (userspace/vxdecap/src/steer/relay.rs, which mirrors them and
 * asserts them at compile time). Change both sides together.
 */
#ifndef VXDECAP_RELAY_SHARED_H
#define VXDECAP_RELAY_SHARED_H

#include <linux/types.h>

/* Largest number of UDP destination ports relayed, VXLAN and GENEVE each (as the capture program). */
#define VXR_MAX_PORTS 8
/* Largest number of collectors (--to). */
#define VXR_MAX_DESTS 64
/* Slots of one consistent-hash table: a prime, as Maglev wants. */
#define VXR_TABLE_SIZE 4093
/* vxr_table holds two tables of VXR_TABLE_STRIDE slots: the one in use and the next one. */
#define VXR_TABLE_STRIDE 4096
/* Outer IPv4 datagrams whose first fragment was relayed, remembered for the later ones. */
#define VXR_MAX_FRAG_FLOWS 4096

/*
 * One collector: where its packets go and the source they leave with
 * (network order), IPv4 or IPv6 as `family` says (the relay does not change
 * a tunnel's IP version: every collector has the family of the outer
 * headers it is sent).
 */
struct vxr_dest {
	__u32 daddr;
	__u32 saddr;
	__u32 daddr6[4];
	__u32 saddr6[4];
	__u32 family; /* 4 or 6 */
	__u32 reserved;
};

/*
 * This CPU's cache of the FIB's answer for one collector (vxr_fib_cache,
 * indexed as vxr_dests): what bpf_fib_lookup gave, and what it was asked
 * and checked against. It answers a frame only while `generation` is the
 * one in vxr_fib_generation (user space moves that on every rtnetlink
 * event that can change an answer, and every second), the frame came in
 * on `ingress` with `tos`, and its length fits `mtu`.
 */
struct vxr_fib_entry {
	__u64 generation; /* 0: empty */
	__u32 ingress;    /* the ifindex it was looked up from */
	__u32 egress;     /* the ifindex the FIB sends out of */
	__u16 mtu;        /* the MTU the lookup checked tot_len against */
	__u8 tos;         /* the IPv4 TOS it was looked up with (0 over IPv6) */
	__u8 reserved;
	__u8 dmac[6];
	__u8 smac[6];
};

/* vxr_config[0]. */
struct vxr_config {
	__u32 table; /* which of the two tables is in use: 0 or 1 */
	__u32 dests; /* collectors in the table (0: nothing is relayed) */
};

/* The relay's per-CPU decision counters, in vxr_counters: one per frame. */
enum vxr_counter {
	VXR_CTR_TX = 0,            /* relayed out of the interface it came in on (XDP_TX) */
	VXR_CTR_REDIRECT,          /* relayed out of another interface (bpf_redirect) */
	VXR_CTR_FRAGMENT,          /* outer IPv4 fragment after the first, relayed where its first went */
	VXR_CTR_PASS_NOT_IP,       /* not IPv4/IPv6 (ARP, LLDP, ...) */
	VXR_CTR_PASS_VLAN,         /* outer VLAN tag: left to the kernel */
	VXR_CTR_PASS_NOT_UDP,      /* IP, but not UDP */
	VXR_CTR_PASS_PORT,         /* UDP to a port that is not relayed */
	VXR_CTR_PASS_FAMILY,       /* outer IP version other than the collectors': left to the kernel */
	VXR_CTR_PASS_MALFORMED,    /* headers cut short or invalid */
	VXR_CTR_PASS_FRAGMENT,     /* outer fragment whose first fragment was not relayed */
	VXR_CTR_PASS_TTL,          /* TTL would reach 0: the kernel answers with ICMP */
	VXR_CTR_PASS_NO_NEIGH,     /* the next hop's MAC is not resolved yet */
	VXR_CTR_PASS_NO_ROUTE,     /* no usable route to the collector (unreachable, blackhole, ...) */
	VXR_CTR_PASS_FORWARDING_OFF, /* forwarding is off on the ingress interface: no FIB lookup */
	VXR_CTR_PASS_MTU,          /* bigger than the egress MTU: the kernel fragments or answers */
	VXR_CTR_PASS_NO_COLLECTOR, /* no collector configured */
	VXR_CTR_DROP_SOURCE,       /* outer source outside the allowlist */
	VXR_CTR_DROP_VNI,          /* VNI outside the allowlist */
	VXR_CTR_PASS_GENEVE_MALFORMED, /* GENEVE cut short, not version 0, or a protocol not relayed */
	VXR_CTR_PASS_TUNNEL_DEPTH, /* a tunnel inside GENEVE past the depth limit (--max-tunnel-depth) */
	VXR_CTR_COUNT,
};

/* The FIB cache's per-CPU counters, in vxr_fib_counters: one per frame that reached the FIB. */
enum vxr_fib_counter {
	VXR_FIB_CTR_HIT = 0, /* answered from this CPU's cache */
	VXR_FIB_CTR_LOOKUP,  /* bpf_fib_lookup called (no entry, a stale one, or another ingress, TOS or size) */
	VXR_FIB_CTR_COUNT,
};

#endif
