//! Wire formats for vxdecap: zero-copy views over the VXLAN header stack and the
//! [`decapsulate`] step that turns an outer frame into the inner Ethernet frame it carries.
//!
//! The layout follows smoltcp's `src/wire`: one module per header, each with a view type
//! (`Frame<T>`, `Tag<T>`, `Packet<T>`, `Header<T>`) wrapping any `T: AsRef<[u8]>` without
//! copying. Field offsets live in a private `field` module as named ranges; getters read network
//! byte order; setters exist when `T: AsMut<[u8]>` too (the emit direction).
//!
//! # The panic contract
//!
//! Every view has `new_checked`, which performs the one length (and sanity) check up front.
//! After `new_checked` has returned `Ok`, **no accessor or setter of that view can panic**,
//! whatever the bytes are. `new_unchecked` skips the check; accessors on an unchecked view over a
//! short buffer may panic, so only use it on buffers you sized yourself (the emit direction).
//! [`decapsulate`] only ever uses checked views and never panics, allocates or copies: it is the
//! function the fuzzer aims at.
//!
//! Outer IPv4 fragments are the one input [`decapsulate`] cannot handle alone: the
//! [`reassembly`] module's [`Reassembler`] (per worker, preallocated, never panicking either)
//! turns them back into whole frames for it.
//!
//! # Example
//!
//! ```
//! use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
//! use vxdecap_wire::{decapsulate, PortSet, Reject};
//!
//! let inner = inner_ipv4_udp_frame(&InnerIpv4Udp { payload_len: 32, ..Default::default() })
//!     .expect("small inner frame");
//! let outer = VxlanFrameBuilder::new().vni(100).inner(&inner).build().expect("valid builder");
//!
//! let ports = PortSet::default(); // {4789}
//! let decap = decapsulate(&outer, &ports).expect("a VXLAN frame");
//! assert_eq!(decap.vni, 100);
//! assert_eq!(decap.inner, &inner[..]);
//!
//! // A frame that is not VXLAN says why, as a counter-friendly reason.
//! assert_eq!(decapsulate(&inner, &ports), Err(Reject::PortNotConfigured));
//! assert_eq!(Reject::PortNotConfigured.name(), "port_not_configured");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod checksum;
pub mod decap;
pub mod ethernet;
pub mod geneve;
pub mod inner_check;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod link;
pub mod reassembly;
pub mod rx_meta;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use decap::{
    decapsulate, inner_orig_len, synthetic_ethernet, Decapsulated, GeneveLayer, PortSet,
    PortSetError, Reject, Tunnel, DEFAULT_MAX_DEPTH, GENEVE_PORT, MAX_DEPTH, MAX_PORTS,
    VXLAN_GPE_PORT, VXLAN_PORT,
};
pub use link::{decapsulate_link, LinkType};
pub use reassembly::{Push, Reassembler, ReassemblyConfig, ReassemblyEvent};
pub use rx_meta::RxMeta;

/// A byte range of a fixed-size header field (used by each module's private `field` module).
type Field = core::ops::Range<usize>;
/// The bytes from a given offset to the end of the view (a header's payload).
type Rest = core::ops::RangeFrom<usize>;
