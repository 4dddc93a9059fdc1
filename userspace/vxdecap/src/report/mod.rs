//! What a run tells: per-worker counters, the Prometheus metrics and the
//! end-of-run summary.

pub mod metrics;
pub mod stats;
pub mod summary;
