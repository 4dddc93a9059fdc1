/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Definitions shared by the XDP program and the Rust loader
 * (userspace/vxdecap/src/steer.rs mirrors them with #[repr(C)] and
 * compile-time assertions). Change both sides together.
 */
#ifndef VXDECAP_SHARED_H
#define VXDECAP_SHARED_H

/* Largest number of UDP destination ports steered to AF_XDP. */
#define VXD_MAX_PORTS 8
/* XSKMAP size: one slot per rx queue index. */
#define VXD_MAX_QUEUES 256

/* Index of each per-CPU decision counter in the vxd_counters map. */
enum vxd_counter {
	VXD_CTR_REDIRECTED = 0,     /* handed to the AF_XDP socket of the rx queue */
	VXD_CTR_PASS_NO_SOCKET,     /* matched, but no socket is bound on this queue */
	VXD_CTR_PASS_NOT_IP,        /* not IPv4/IPv6 (ARP, LLDP, ...) */
	VXD_CTR_PASS_NOT_UDP,       /* IP, but not UDP (TCP, ICMP, ...) */
	VXD_CTR_PASS_PORT,          /* UDP to a port that is not configured */
	VXD_CTR_PASS_FRAGMENT,      /* outer IPv4 fragment (left to the kernel) */
	VXD_CTR_PASS_MALFORMED,     /* headers cut short or invalid */
	VXD_CTR_COUNT,
};

#endif
