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

/// Bytes a frame of an `mtu` link takes: the MTU, the Ethernet header and
/// two VLAN tags.
pub fn frame_needed(mtu: u32) -> u32 {
    mtu + 14 + 8
}

/// The UMEM frame size for an `mtu` link: `configured`, raised with
/// `auto` (doubling) to what the MTU needs, up to `page`. What `capture`
/// uses and `doctor` reports.
pub fn fitted_frame_size(mtu: u32, configured: u32, auto: bool, page: u32) -> u32 {
    let needed = frame_needed(mtu);
    let mut size = configured;
    if auto {
        while largest_frame(size) < needed && size < page {
            size *= 2;
        }
    }
    size
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
    let needed = frame_needed(mtu);
    let size = fitted_frame_size(mtu, configured, config.auto_frame_size, page);
    if size != configured {
        tracing::info!(
            target: CONSOLE,
            "MTU {mtu} on {}: UMEM frames of {size} bytes (frames up to {} bytes)",
            config.interface,
            largest_frame(size)
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_size_doubles_up_to_a_page_for_the_mtu() {
        assert_eq!(fitted_frame_size(1500, 2048, true, 4096), 2048);
        assert_eq!(fitted_frame_size(3500, 2048, true, 4096), 4096);
        assert_eq!(fitted_frame_size(3500, 2048, false, 4096), 2048);
        assert_eq!(fitted_frame_size(9000, 2048, true, 4096), 4096);
        assert!(largest_frame(4096) < frame_needed(9000));
        assert!(largest_frame(2048) >= frame_needed(1500));
    }
}
