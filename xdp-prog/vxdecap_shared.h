/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Definitions shared by the XDP program and the Rust loader
 * (userspace/vxdecap/src/steer.rs mirrors them with #[repr(C)] and
 * compile-time assertions). Change both sides together.
 */
#ifndef VXDECAP_SHARED_H
#define VXDECAP_SHARED_H

#include <linux/types.h>

/* Largest number of UDP destination ports steered to AF_XDP. */
#define VXD_MAX_PORTS 8
/* XSKMAP size: one slot per (receive device, rx queue), over all devices. */
#define VXD_MAX_QUEUES 256
/* Receive devices of one capture (the named device and its VF or ports). */
#define VXD_MAX_DEVICES 16

/*
 * vxd_devices[ingress ifindex]: where the device's sockets start in the
 * XSKMAP, and its row in vxd_device_stats. Its rx queue q has slot
 * `slot_base + q` when q < queues (0 for a device that left the stack but
 * may still receive). A frame from a device without an entry, or from a
 * queue without a socket, is passed and counted as no_socket in the row
 * (VXD_MAX_DEVICES for a device without an entry).
 */
struct vxd_device {
	__u32 slot_base;
	__u32 queues;
	__u32 row;
	__u32 reserved;
};

/* vxd_device_stats[row] (per CPU): what the program did with the steered
 * frames of each receive device. */
struct vxd_device_stats {
	__u64 redirected; /* handed to a socket of this device */
	__u64 no_socket;  /* matched, but no socket bound for this (device, queue) */
};

/*
 * Every frame redirected to AF_XDP starts with this record, which the
 * program puts in front of the Ethernet header (bpf_xdp_adjust_head):
 * the receive time read in XDP, as close to the wire as the kernel lets
 * us get, and where the VXLAN header starts in the frame that follows.
 * Little-endian (host order; the program and the workers share a host).
 */
struct vxd_rx_meta {
	__u64 rx_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 magic;        /* VXD_META_MAGIC */
	__u16 vxlan_offset; /* bytes from the Ethernet header to the tunnel (VXLAN or GENEVE) header */
	__u8 tunnel;        /* VXD_TUNNEL_*: which header is there */
	__u8 reserved;
};
#define VXD_META_LEN 16
_Static_assert(sizeof(struct vxd_rx_meta) == VXD_META_LEN, "vxd_rx_meta layout");
/* "VXDM" read as a little-endian u32. */
#define VXD_META_MAGIC 1296324694
/* vxd_rx_meta.tunnel: not known (a fragment after the first), VXLAN, GENEVE. */
#define VXD_TUNNEL_UNKNOWN 0
#define VXD_TUNNEL_VXLAN 1
#define VXD_TUNNEL_GENEVE 2
/* Where the tunnel header is, and which, as one value for steer(). */
#define VXD_WHERE(offset, tunnel) ((__u32)(offset) | ((__u32)(tunnel) << 16))

/* Entries of the allowlist maps (sources per family, VNIs) and of the fragment table. */
#define VXD_MAX_ALLOW_SOURCES 1024
#define VXD_MAX_ALLOW_VNIS 65536
#define VXD_MAX_FRAG_FLOWS 4096

/* vxd_filter[0]: which allowlists are on (changed at run time, without reloading). */
struct vxd_filter {
	__u32 sources; /* 1: only sources in vxd_allow_v4/vxd_allow_v6 */
	__u32 vnis;    /* 1: only VNIs in vxd_allow_vni */
};

/* LPM trie keys: prefix length in bits, then the address in network order. */
struct vxd_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct vxd_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A fragmented datagram whose first fragment was VXLAN to a steered port. */
struct vxd_frag_key {
	__u32 saddr;
	__u32 daddr;
	__u16 id;
	__u16 pad;
};

/* Index of each per-CPU decision counter in the vxd_counters map. */
enum vxd_counter {
	VXD_CTR_REDIRECTED = 0,     /* handed to the AF_XDP socket of the rx queue */
	VXD_CTR_PASS_NO_SOCKET,     /* matched, but no socket is bound on this queue */
	VXD_CTR_PASS_NOT_IP,        /* not IPv4/IPv6 (ARP, LLDP, ...) */
	VXD_CTR_PASS_NOT_UDP,       /* IP, but not UDP (TCP, ICMP, ...) */
	VXD_CTR_PASS_PORT,          /* UDP to a port that is not configured (VXLAN or GENEVE) */
	VXD_CTR_PASS_FRAGMENT,      /* outer IPv4 fragment (left to the kernel) */
	VXD_CTR_PASS_MALFORMED,     /* headers cut short or invalid */
	VXD_CTR_PASS_NO_HEADROOM,   /* no room in front of the frame for the vxd_rx_meta record */
	VXD_CTR_DROP_SOURCE,        /* VXLAN from a source outside the allowlist: dropped */
	VXD_CTR_DROP_VNI,           /* VXLAN or GENEVE with a VNI outside the allowlist: dropped */
	VXD_CTR_FRAGMENT_STEERED,   /* outer IPv4 fragment sent to AF_XDP for reassembly (also counted as redirected) */
	VXD_CTR_COUNT,
};

#endif
