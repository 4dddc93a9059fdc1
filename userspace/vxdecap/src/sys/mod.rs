//! System interfaces: CPUs, rtnetlink, the TAP device.

pub mod cpu;
pub mod netlink;
pub mod tap;
