//! Sends prebuilt VXLAN frames out of an interface as fast as an AF_PACKET
//! socket allows (sendmmsg, qdisc bypass), for quick rate checks on a veth
//! pair. Run it inside the sender namespace:
//!
//! ```text
//! ip netns exec SENDER vxdecap-blast --interface und0 --dst-mac 02:.. --count 2000000
//! ```
//! Prints one line: `sent N frames in S s (P pps)`.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::time::Instant;

use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};

const BATCH: usize = 64;

struct Args {
    interface: String,
    dst_mac: [u8; 6],
    count: u64,
    inner_payload: usize,
    flows: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        interface: String::new(),
        dst_mac: [0xff; 6],
        count: 1_000_000,
        inner_payload: 14,
        flows: 256,
        src: Ipv4Addr::new(10, 77, 0, 1),
        dst: Ipv4Addr::new(10, 77, 0, 2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--interface" => args.interface = value,
            "--dst-mac" => {
                let bytes: Result<Vec<u8>, _> = value
                    .split(':')
                    .map(|b| u8::from_str_radix(b, 16))
                    .collect();
                args.dst_mac = bytes
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("--dst-mac {value} is not a MAC address"))?;
            }
            "--count" => args.count = value.parse().map_err(|_| "--count takes a number")?,
            "--inner-payload" => {
                args.inner_payload = value
                    .parse()
                    .map_err(|_| "--inner-payload takes a number")?
            }
            "--flows" => args.flows = value.parse().map_err(|_| "--flows takes a number")?,
            "--src" => args.src = value.parse().map_err(|_| "--src takes an IPv4 address")?,
            "--dst" => args.dst = value.parse().map_err(|_| "--dst takes an IPv4 address")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.interface.is_empty() {
        return Err("--interface is required".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vxdecap-blast: {e}");
            std::process::exit(2);
        }
    };
    let frames: Vec<Vec<u8>> = (0..args.flows.max(1))
        .map(|flow| {
            let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
                src_port: 10_000 + (flow as u16),
                payload_len: args.inner_payload,
                ..InnerIpv4Udp::default()
            })
            .expect("inner frame");
            VxlanFrameBuilder::new()
                .outer_dst_mac(args.dst_mac)
                .outer_src_ip(args.src)
                .outer_dst_ip(args.dst)
                .udp_src_port(49152 + (flow as u16 % 16384))
                .vni(27)
                .inner(&inner)
                .build()
                .expect("outer frame")
        })
        .collect();

    let name = CString::new(args.interface.clone()).expect("no NUL in the name");
    // SAFETY: `name` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        eprintln!("vxdecap-blast: no interface {}", args.interface);
        std::process::exit(2);
    }
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        eprintln!(
            "vxdecap-blast: socket: {} (needs root)",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and the length matches its type.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&args.dst_mac);
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        eprintln!("vxdecap-blast: bind: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }

    let mut iovecs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| {
            let frame = &frames[i % frames.len()];
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            }
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is valid before we fill it in.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (msg, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }

    let started = Instant::now();
    let mut sent = 0u64;
    let mut next_flow = 0usize;
    while sent < args.count {
        let n = BATCH.min((args.count - sent) as usize);
        for (i, iov) in iovecs.iter_mut().take(n).enumerate() {
            let frame = &frames[(next_flow + i) % frames.len()];
            iov.iov_base = frame.as_ptr() as *mut libc::c_void;
            iov.iov_len = frame.len();
        }
        // SAFETY: `msgs[..n]` point at `iovecs`, which point into `frames`;
        // all of them live until the call returns.
        let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOBUFS) || err.raw_os_error() == Some(libc::EAGAIN)
            {
                std::thread::yield_now();
                continue;
            }
            eprintln!("vxdecap-blast: sendmmsg: {err}");
            std::process::exit(1);
        }
        sent += rc as u64;
        next_flow = (next_flow + rc as usize) % frames.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} frames of {} B in {secs:.3} s ({:.0} pps)",
        frames[0].len(),
        sent as f64 / secs
    );
}
