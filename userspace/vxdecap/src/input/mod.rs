//! Capture files in, for `decap -r`: the pcap/pcapng reader (any link type
//! VXLAN is captured in, from a file or stdin) and the guard that keeps an
//! output from overwriting its own input.

mod reader;
mod same_file;

pub use reader::{CaptureInput, InputReport, Packet, MAX_SNAPLEN};
pub use same_file::{check_outputs_spare_input, FileId, OverwritesInput};
