//! UMEM sizing: the frame size an interface's MTU needs.

use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;

/// Bytes in front of a frame in a UMEM chunk: the kernel's XDP headroom
/// and the XDP program's receive record.
pub(crate) const FRAME_OVERHEAD: u32 = 256 + vxdecap_wire::RxMeta::LEN as u32;

/// Largest outer Ethernet frame (two VLAN tags included) one UMEM chunk of
/// `frame_size` bytes holds without AF_XDP multi-buffer.
pub fn largest_frame(frame_size: u32) -> u32 {
    frame_size.saturating_sub(FRAME_OVERHEAD)
}

/// The UMEM frame size: the configured one, raised (when allowed) to what
/// the interface's MTU needs, up to a page. Says what it did, and warns
/// when even a page is too small: such frames the kernel drops and counts
/// (`xsk_rx_dropped`), since AF_XDP without multi-buffer holds one frame
/// per chunk.
pub(crate) fn frame_size_for_mtu(config: &CaptureConfig) -> u32 {
    let configured = config.socket.frame_size;
    let Some(mtu) = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", config.interface))
        .ok()
        .and_then(|m| m.trim().parse::<u32>().ok())
    else {
        return configured;
    };
    let page = vxdecap_xsk::page_size();
    let needed = mtu + 14 + 8; // Ethernet header and two VLAN tags
    let mut size = configured;
    if config.auto_frame_size && largest_frame(size) < needed {
        while largest_frame(size) < needed && size < page {
            size *= 2;
        }
        if size != configured {
            tracing::info!(
                target: CONSOLE,
                "MTU {mtu} on {}: UMEM frames of {size} bytes (frames up to {} bytes)",
                config.interface,
                largest_frame(size)
            );
        }
    }
    if largest_frame(size) < needed {
        tracing::warn!(
            target: CONSOLE,
            "MTU {mtu} on {}: frames over {} bytes do not fit a {size}-byte AF_XDP frame; the kernel drops them and counts them as xsk_rx_dropped (multi-buffer AF_XDP is not supported yet)",
            config.interface,
            largest_frame(size)
        );
    }
    size
}
