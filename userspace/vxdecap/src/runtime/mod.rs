//! Threads and lifecycle: live capture (start, supervise, stop), offline
//! runs, interface hot-plug, privileges.

pub mod hotplug;
pub mod live;
pub mod offline;
pub mod privs;
