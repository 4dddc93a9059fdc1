//! The data path in user space, per packet: the stage that decapsulates,
//! the batches that carry inner frames, the lock-free queues to the
//! analyzers and back, and the analyzer threads.

pub mod analyzers;
pub mod batch;
pub mod idle;
pub mod queue;
pub mod stage;
