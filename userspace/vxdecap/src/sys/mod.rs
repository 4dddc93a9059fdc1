//! System interfaces: CPUs, rtnetlink and generic netlink, the ETHTOOL
//! ioctl, the TAP device.

pub mod cpu;
pub mod ethtool;
pub mod genl;
pub mod netlink;
pub mod tap;
