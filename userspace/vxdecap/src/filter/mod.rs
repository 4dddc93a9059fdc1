//! Inner filters: tcpdump filter expressions applied to inner frames.
//!
//! An expression is compiled once, at setup, by libpcap's own compiler (the
//! `pcap` crate over a dead EN10MB handle, as `tcpdump -d` would), so it
//! means exactly what it means to tcpdump users; the classic-BPF program
//! libpcap emits then runs per frame in [`cbpf`], a small interpreter in
//! safe Rust. No libpcap code runs per frame.
//!
//! ```
//! use vxdecap::filter::InnerFilter;
//!
//! let web = InnerFilter::compile("tcp port 80").expect("a valid expression");
//! let arp = [0xffu8; 12].iter().chain(&[0x08, 0x06]).copied().collect::<Vec<u8>>();
//! assert!(!web.matches(&arp, arp.len() as u32));
//! ```

pub mod cbpf;

use std::sync::{Arc, Mutex};

pub use cbpf::{Insn, Program, ProgramError};

/// Why an expression cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// libpcap refused the expression.
    #[error("inner filter {expression:?}: {message}: check the syntax (man pcap-filter)")]
    Syntax {
        /// The expression.
        expression: String,
        /// libpcap's message.
        message: String,
    },
    /// The expression compiled to a program we do not run.
    #[error("inner filter {expression:?} compiles to a program vxdecap cannot run: {source}")]
    Program {
        /// The expression.
        expression: String,
        /// What is wrong with the program.
        source: ProgramError,
    },
}

/// A compiled inner filter: cheap to clone (the program is shared).
#[derive(Clone, Debug)]
pub struct InnerFilter {
    expression: Arc<str>,
    program: Arc<Program>,
}

/// pcap_compile is reentrant in libpcap ≥ 1.8, but older ones share parser
/// state; setup is not hot, so compilations take turns.
static COMPILE: Mutex<()> = Mutex::new(());

impl InnerFilter {
    /// Compiles a tcpdump filter expression for Ethernet frames (optimized,
    /// as tcpdump does by default).
    pub fn compile(expression: &str) -> Result<Self, FilterError> {
        let program = compile_insns(expression)?;
        let program = Program::new(program).map_err(|source| FilterError::Program {
            expression: expression.to_owned(),
            source,
        })?;
        Ok(Self {
            expression: expression.into(),
            program: Arc::new(program),
        })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// True when the frame `bytes` (captured; `wire_len` on the wire) matches.
    #[inline]
    pub fn matches(&self, bytes: &[u8], wire_len: u32) -> bool {
        self.program.matches(bytes, wire_len)
    }
}

/// libpcap's program for `expression`, as instructions.
fn compile_insns(expression: &str) -> Result<Vec<Insn>, FilterError> {
    let syntax = |message: String| FilterError::Syntax {
        expression: expression.to_owned(),
        message,
    };
    let _turn = COMPILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .map_err(|e| syntax(format!("libpcap cannot open a dead handle: {e}")))?;
    let compiled = dead
        .compile(expression, true)
        .map_err(|e| syntax(e.to_string()))?;
    // The pcap crate shows an instruction only as "code jt jf k" (its
    // fields are private); read them back from that.
    compiled
        .get_instructions()
        .iter()
        .map(|insn| {
            let text = insn.to_string();
            let mut fields = text.split(' ').map(str::parse::<u64>);
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(Ok(code)), Some(Ok(jt)), Some(Ok(jf)), Some(Ok(k))) => Ok(Insn::new(
                    u16::try_from(code).unwrap_or(u16::MAX),
                    u8::try_from(jt).unwrap_or(u8::MAX),
                    u8::try_from(jf).unwrap_or(u8::MAX),
                    u32::try_from(k).unwrap_or(u32::MAX),
                )),
                _ => Err(syntax(format!("unexpected instruction text {text:?}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp};

    /// Ethernet + IPv4 + TCP with `flags`, from `src_port` to `dst_port`.
    fn tcp_frame(src_port: u16, dst_port: u16, flags: u8, vlan: Option<u16>) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if let Some(id) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let ip = [
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 4, 10, 0, 2, 6,
        ];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&src_port.to_be_bytes());
        f.extend_from_slice(&dst_port.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    fn ipv6_udp_frame() -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        f
    }

    fn frames() -> Vec<Vec<u8>> {
        let udp = inner_ipv4_udp_frame(&InnerIpv4Udp {
            src_ip: Ipv4Addr::new(192, 168, 0, 1),
            dst_ip: Ipv4Addr::new(192, 168, 0, 2),
            src_port: 5353,
            dst_port: 53,
            payload_len: 30,
            ..Default::default()
        })
        .expect("frame");
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        vec![
            tcp_frame(54633, 80, 0x02, None),
            tcp_frame(80, 54633, 0x12, None),
            tcp_frame(40000, 443, 0x10, None),
            tcp_frame(54633, 80, 0x02, Some(100)),
            udp,
            ipv6_udp_frame(),
            arp,
            vec![0u8; 14],
            Vec::new(),
        ]
    }

    /// Every expression gives the same verdict as libpcap's own interpreter
    /// (pcap_offline_filter) on every frame, including cut ones.
    #[test]
    fn verdicts_equal_libpcaps_on_programs_it_compiles() {
        let expressions = [
            "tcp port 80",
            "udp",
            "icmp",
            "arp",
            "ip6",
            "vlan",
            "vlan 100 and tcp",
            "host 10.0.2.6",
            "src net 192.168.0.0/16",
            "tcp[tcpflags] & tcp-syn != 0",
            "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)",
            "udp dst port 53 and ip6",
            "portrange 400-500",
            "greater 60",
            "less 50",
            "ip[2:2] > 30 and ip[8] = 64",
            "ether broadcast",
            "tcp and ip[6:2] & 0x1fff = 0 and tcp[0:2] % 7 = 3",
            "not ip and not ip6",
            "host 203.0.113.99",
        ];
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("dead handle");
        let mut checked = 0;
        for expression in expressions {
            let filter = InnerFilter::compile(expression).expect(expression);
            let reference = {
                let _turn = COMPILE
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                dead.compile(expression, true).expect(expression)
            };
            for frame in frames() {
                for cut in [frame.len(), frame.len().saturating_sub(3), 20, 0] {
                    let bytes = &frame[..cut.min(frame.len())];
                    // libpcap's filter passes len = caplen.
                    assert_eq!(
                        filter.matches(bytes, bytes.len() as u32),
                        reference.filter(bytes),
                        "{expression:?} on {bytes:02x?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500);
    }

    #[test]
    fn expected_verdicts_on_known_frames() {
        let f = frames();
        let matching = |expression: &str| -> Vec<usize> {
            let filter = InnerFilter::compile(expression).expect(expression);
            f.iter()
                .enumerate()
                .filter(|(_, b)| filter.matches(b, b.len() as u32))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(matching("tcp port 80"), [0, 1]);
        assert_eq!(matching("vlan and tcp port 80"), [3]);
        assert_eq!(matching("tcp[tcpflags] & tcp-syn != 0"), [0, 1]);
        assert_eq!(matching("udp"), [4, 5]);
        assert_eq!(matching("ip6"), [5]);
        assert_eq!(matching("arp"), [6]);
        assert_eq!(matching("host 203.0.113.99"), Vec::<usize>::new());
    }

    #[test]
    fn len_uses_the_wire_length() {
        let filter = InnerFilter::compile("greater 1000").expect("greater");
        let frame = tcp_frame(1, 2, 0, None);
        assert!(!filter.matches(&frame, frame.len() as u32));
        assert!(filter.matches(&frame, 1400), "a truncated 1400-byte frame");
    }

    #[test]
    fn bad_expressions_name_the_fix() {
        // As in tcpdump, a filter libpcap proves empty is refused.
        let err = InnerFilter::compile("ip and not ip").expect_err("rejects all");
        assert!(err.to_string().contains("rejects all packets"), "{err}");
        let err = InnerFilter::compile("tcp prot 80").expect_err("syntax error");
        let text = err.to_string();
        assert!(text.contains("tcp prot 80"), "{text}");
        assert!(text.contains("man pcap-filter"), "{text}");
    }
}
