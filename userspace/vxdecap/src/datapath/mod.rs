//! The data path in user space, per packet: the batch loop ([`worker`])
//! over a frame source ([`source`]: an AF_XDP socket, or a capture file),
//! the stage that decapsulates ([`stage`]), the batches that carry inner
//! frames ([`batch`]), the lock-free lanes to the analyzers and back
//! ([`queue`]), the analyzer threads ([`analyzers`]), and how a worker
//! waits on an empty ring ([`idle`]). Nothing here allocates, locks or
//! logs per packet.

pub mod analyzers;
pub mod batch;
pub mod idle;
pub mod queue;
pub mod source;
pub mod stage;
pub mod worker;
