//! The `vxdecap` command line: its log.

pub mod log;
