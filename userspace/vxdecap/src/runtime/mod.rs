//! Threads and lifecycle: live capture (start, supervise, stop), offline
//! runs, interface hot-plug, privileges.

pub mod config;
pub mod cpus;
pub mod device;
pub mod error;
pub mod hotplug;
pub mod live;
pub mod metrics_server;
pub(crate) mod notify;
pub mod offline;
pub mod preflight;
pub mod privs;
pub mod receive_work;
pub mod stack;
pub mod supervisor;
pub mod umem;
pub mod worker;
