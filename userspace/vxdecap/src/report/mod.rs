//! What a run tells: per-worker counters, the Prometheus metrics, the
//! `--stats` line and the end-of-run summary.

pub mod metrics;
pub mod progress;
pub mod stats;
pub mod stats_line;
pub mod summary;
