//! The embedding API: configure a capture, run it, read its summary.

pub mod builder;

pub use builder::{Capture, CaptureBuilder, RunningCapture};
