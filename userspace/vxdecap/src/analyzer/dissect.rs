//! One-line, tcpdump-like descriptions of inner frames, for people: the
//! default output of `capture` without `-w`, and the lab's view of the
//! mirrored conversation. Never panics on any input.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Appends a description of the inner Ethernet `frame` to `out`.
pub fn describe(frame: &[u8], out: &mut String) {
    let Some(mut ethertype) = be16(frame, 12) else {
        out.push_str("runt frame");
        return;
    };
    let mut offset = 14;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        let (Some(tci), Some(next)) = (be16(frame, offset), be16(frame, offset + 2)) else {
            out.push_str("truncated VLAN tag");
            return;
        };
        let _ = write!(out, "vlan {} ", tci & 0x0fff);
        ethertype = next;
        offset += 4;
    }
    let l3 = &frame[offset.min(frame.len())..];
    match ethertype {
        0x0800 => describe_ipv4(l3, out),
        0x86dd => describe_ipv6(l3, out),
        0x0806 => describe_arp(l3, out),
        other => {
            let _ = write!(out, "ethertype 0x{other:04x}, length {}", frame.len());
        }
    }
}

fn describe_ipv4(ip: &[u8], out: &mut String) {
    let (Some(&vihl), Some(proto)) = (ip.first(), ip.get(9)) else {
        out.push_str("IP truncated");
        return;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(src), Some(dst)) = (ip.get(12..16), ip.get(16..20)) else {
        out.push_str("IP truncated");
        return;
    };
    let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
    let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
    let total = be16(ip, 2).map_or(ip.len(), usize::from).min(ip.len());
    let l4 = ip.get(ihl..total).unwrap_or(&[]);
    out.push_str("IP ");
    describe_l4(*proto, &src.to_string(), &dst.to_string(), l4, out);
}

fn describe_ipv6(ip: &[u8], out: &mut String) {
    let (Some(next), Some(src), Some(dst)) = (ip.get(6), ip.get(8..24), ip.get(24..40)) else {
        out.push_str("IP6 truncated");
        return;
    };
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap_or_default());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).unwrap_or_default());
    let len = be16(ip, 4).map_or(0, usize::from);
    let l4 = ip.get(40..(40 + len).min(ip.len())).unwrap_or(&[]);
    out.push_str("IP6 ");
    describe_l4(*next, &src.to_string(), &dst.to_string(), l4, out);
}

fn describe_l4(proto: u8, src: &str, dst: &str, l4: &[u8], out: &mut String) {
    match proto {
        6 => {
            let (Some(sport), Some(dport), Some(&off), Some(&flags)) =
                (be16(l4, 0), be16(l4, 2), l4.get(12), l4.get(13))
            else {
                let _ = write!(out, "{src} > {dst}: TCP truncated");
                return;
            };
            let payload = l4.get(usize::from(off >> 4) * 4..).unwrap_or(&[]);
            let _ = write!(out, "{src}.{sport} > {dst}.{dport}: Flags [");
            for (bit, name) in [
                (0x02, 'S'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x08, 'P'),
                (0x10, '.'),
            ] {
                if flags & bit != 0 {
                    out.push(name);
                }
            }
            let _ = write!(out, "], length {}", payload.len());
            describe_http(payload, out);
        }
        17 => match (be16(l4, 0), be16(l4, 2)) {
            (Some(sport), Some(dport)) => {
                let _ = write!(
                    out,
                    "{src}.{sport} > {dst}.{dport}: UDP, length {}",
                    l4.len().saturating_sub(8)
                );
            }
            _ => {
                let _ = write!(out, "{src} > {dst}: UDP truncated");
            }
        },
        1 | 58 => {
            let kind = match (proto, l4.first()) {
                (1, Some(8)) | (58, Some(128)) => "echo request",
                (1, Some(0)) | (58, Some(129)) => "echo reply",
                _ => "message",
            };
            let name = if proto == 1 { "ICMP" } else { "ICMP6" };
            let _ = write!(out, "{src} > {dst}: {name} {kind}, length {}", l4.len());
        }
        other => {
            let _ = write!(out, "{src} > {dst}: ip-proto-{other} {}", l4.len());
        }
    }
}

/// Appends the first line of an HTTP request or response, if the payload starts one.
fn describe_http(payload: &[u8], out: &mut String) {
    const STARTS: [&[u8]; 6] = [b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"HTTP/1."];
    if !STARTS.iter().any(|s| payload.starts_with(s)) {
        return;
    }
    let line_end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len());
    let line = &payload[..line_end.min(120)];
    out.push_str(": HTTP: ");
    out.extend(line.iter().map(|&b| {
        if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        }
    }));
}

fn describe_arp(arp: &[u8], out: &mut String) {
    let (Some(op), Some(spa), Some(tpa)) = (be16(arp, 6), arp.get(14..18), arp.get(24..28)) else {
        out.push_str("ARP truncated");
        return;
    };
    let spa = Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]);
    let tpa = Ipv4Addr::new(tpa[0], tpa[1], tpa[2], tpa[3]);
    match op {
        1 => {
            let _ = write!(out, "ARP, Request who-has {tpa} tell {spa}");
        }
        2 => {
            let _ = write!(
                out,
                "ARP, Reply {spa} is-at {}",
                mac(arp.get(8..14).unwrap_or(&[]))
            );
        }
        other => {
            let _ = write!(out, "ARP, op {other}");
        }
    }
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Formats nanoseconds since the epoch as UTC `HH:MM:SS.nnnnnnnnn`, as tcpdump does.
pub fn time_of_day(timestamp_ns: u64, out: &mut String) {
    let secs = timestamp_ns / 1_000_000_000;
    let day = secs % 86_400;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:09}",
        day / 3600,
        day % 3600 / 60,
        day % 60,
        timestamp_ns % 1_000_000_000
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 2, 5]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 4]);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&43210u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn http_request_line_is_shown() {
        let mut s = String::new();
        describe(
            &tcp_frame(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 0x18),
            &mut s,
        );
        assert_eq!(
            s,
            "IP 10.0.2.5.43210 > 10.0.2.4.80: Flags [P.], length 37: HTTP: GET /index.html HTTP/1.1"
        );
    }

    #[test]
    fn syn_and_garbage_do_not_panic() {
        let mut s = String::new();
        describe(&tcp_frame(b"", 0x02), &mut s);
        assert_eq!(s, "IP 10.0.2.5.43210 > 10.0.2.4.80: Flags [S], length 0");
        let frame = tcp_frame(b"HTTP/1.0 200 OK\r\n", 0x18);
        for cut in 0..frame.len() {
            let mut s = String::new();
            describe(&frame[..cut], &mut s);
            assert!(!s.is_empty());
        }
    }

    #[test]
    fn time_of_day_is_utc_with_nanoseconds() {
        let mut s = String::new();
        time_of_day(1_700_000_000_000_000_123, &mut s);
        assert_eq!(s, "22:13:20.000000123");
    }
}
