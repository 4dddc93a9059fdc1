//! The receive devices of a capture, as the summary and the metrics report them.

/// One receive device of a stack, as the main thread last found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceRow {
    /// Name (the latest, for a VF that came back renamed).
    pub device: String,
    /// `synthetic`, `vf` or `port`.
    pub role: String,
    /// Its sockets are bound and steered to.
    pub up: bool,
    /// Frames the program redirected to its sockets, over all its ifindexes.
    pub redirected: u64,
    /// Frames that matched but found no socket for (device, queue).
    pub no_socket: u64,
}
