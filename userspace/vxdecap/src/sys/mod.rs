//! System interfaces: the TAP device.

pub mod tap;
