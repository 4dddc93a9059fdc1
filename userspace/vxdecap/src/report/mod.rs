//! What a run tells: per-worker counters, the Prometheus metrics, the
//! `--stats` line and the end-of-run summary.

/// The tracing target of the lines a capture tells its user as it runs
/// (`listening on …`, `queue 0 receive policy …`, `SIGHUP: allowlist
/// reloaded …`, the `--stats` line; warnings at WARN, the rest at INFO).
/// The `vxdecap` command prints them as `vxdecap: …` lines; a program
/// embedding the library sees them through its own tracing subscriber, or
/// not at all without one.
pub const CONSOLE: &str = "vxdecap::console";

pub mod device;
pub mod metrics;
pub mod progress;
pub mod stats;
pub mod stats_line;
pub mod summary;
