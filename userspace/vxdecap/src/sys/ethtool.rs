//! The ETHTOOL ioctl (`SIOCETHTOOL`), read-only: a device's driver name,
//! its offload features by name (`ethtool -k`: is LRO or hardware GRO on?)
//! and the fields it hashes UDP over IPv4 on for receive-side scaling
//! (`ethtool -n DEV rx-flow-hash udp4`). What `doctor` and `capture` ask
//! before attaching; the `ethtool` tool is not needed. The ioctl is this
//! module's unsafe code; the parsing of the kernel's answers is safe and
//! tested on byte fixtures.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GRXFH: u32 = 0x29;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
/// `UDP_V4_FLOW` in `struct ethtool_rxnfc.flow_type`.
const UDP_V4_FLOW: u32 = 0x02;
/// More feature names than any kernel has (about 70 in 6.18): a bound on
/// what is allocated for the kernel's answer.
const MAX_FEATURES: usize = 1024;

/// The fields a device hashes a flow type on (`RXH_*` bits of
/// `ethtool_rxnfc.data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashFields(pub u64);

impl HashFields {
    /// Source address (`s` in `ethtool -N … sdfn`).
    pub const IP_SRC: u64 = 1 << 4;
    /// Destination address (`d`).
    pub const IP_DST: u64 = 1 << 5;
    /// Bytes 0-1 of the L4 header: the source port (`f`).
    pub const L4_SRC: u64 = 1 << 6;
    /// Bytes 2-3 of the L4 header: the destination port (`n`).
    pub const L4_DST: u64 = 1 << 7;

    /// True when the hash covers both addresses and both ports (`sdfn`).
    pub fn has_ports(self) -> bool {
        let all = Self::IP_SRC | Self::IP_DST | Self::L4_SRC | Self::L4_DST;
        self.0 & all == all
    }

    /// In ethtool's letters: `sdfn`, `sd`, … (`-` for none).
    pub fn letters(self) -> String {
        let letters: String = [
            (Self::IP_SRC, 's'),
            (Self::IP_DST, 'd'),
            (Self::L4_SRC, 'f'),
            (Self::L4_DST, 'n'),
        ]
        .iter()
        .filter(|&&(bit, _)| self.0 & bit != 0)
        .map(|&(_, c)| c)
        .collect();
        if letters.is_empty() {
            "-".to_owned()
        } else {
            letters
        }
    }
}

/// A device's offload features: their names and the `active` bit of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    names: Vec<String>,
    active: Vec<u32>,
}

impl Features {
    /// Features from their names and `active` words (bit i of word i/32 is
    /// feature i), as the kernel gives them.
    pub fn new(names: Vec<String>, active: Vec<u32>) -> Self {
        Self { names, active }
    }

    /// Whether feature `name` (`rx-lro`, `rx-gro-hw`) is on; `None` when
    /// the kernel does not know the name.
    pub fn active(&self, name: &str) -> Option<bool> {
        let bit = self.names.iter().position(|n| n == name)?;
        let word = self.active.get(bit / 32)?;
        Some(word & (1 << (bit % 32)) != 0)
    }
}

/// The driver's name (`ethtool -i`): `veth`, `hv_netvsc`, `mlx5_core`, `vxlan`.
pub fn driver(interface: &str) -> io::Result<String> {
    // struct ethtool_drvinfo: cmd, then driver[32]; 196 bytes in all.
    let mut buf = [0u8; 256];
    buf[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    ethtool(interface, &mut buf)?;
    Ok(c_string(&buf[4..4 + 32]))
}

/// The device's offload features (`ethtool -k`).
pub fn features(interface: &str) -> io::Result<Features> {
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[] (u32
    // per set asked for: one here).
    let mut info = [0u8; 24];
    info[..4].copy_from_slice(&ETHTOOL_GSSET_INFO.to_ne_bytes());
    info[8..16].copy_from_slice(&(1u64 << ETH_SS_FEATURES).to_ne_bytes());
    ethtool(interface, &mut info)?;
    let count = parse_sset_count(&info)
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no feature names"))?;
    // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
    let mut strings = vec![0u8; 12 + count * ETH_GSTRING_LEN];
    strings[..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    strings[4..8].copy_from_slice(&ETH_SS_FEATURES.to_ne_bytes());
    strings[8..12].copy_from_slice(&(count as u32).to_ne_bytes());
    ethtool(interface, &mut strings)?;
    let names = parse_strings(&strings);
    // struct ethtool_gfeatures: cmd, size, then size blocks of four u32
    // (available, requested, active, never_changed).
    let words = count.div_ceil(32);
    let mut blocks = vec![0u8; 8 + words * 16];
    blocks[..4].copy_from_slice(&ETHTOOL_GFEATURES.to_ne_bytes());
    blocks[4..8].copy_from_slice(&(words as u32).to_ne_bytes());
    ethtool(interface, &mut blocks)?;
    Ok(Features::new(names, parse_active_words(&blocks, words)))
}

/// The fields the device hashes UDP over IPv4 on (`ethtool -n DEV
/// rx-flow-hash udp4`); `EOPNOTSUPP` from a driver that does not say.
pub fn udp4_hash(interface: &str) -> io::Result<HashFields> {
    // struct ethtool_rxnfc: cmd, flow_type, data (u64), then a flow spec
    // and rule fields this command leaves alone: 192 bytes in all.
    let mut nfc = [0u8; 256];
    nfc[..4].copy_from_slice(&ETHTOOL_GRXFH.to_ne_bytes());
    nfc[4..8].copy_from_slice(&UDP_V4_FLOW.to_ne_bytes());
    ethtool(interface, &mut nfc)?;
    let data = nfc[8..]
        .first_chunk::<8>()
        .map_or(0, |b| u64::from_ne_bytes(*b));
    Ok(HashFields(data))
}

/// The rx queues in use (`ethtool -l`: rx-only plus combined channels),
/// which a socket can bind; `EOPNOTSUPP` from a driver without channels
/// (a bridge), and `Unsupported` when it reports none.
pub fn rx_channels(interface: &str) -> io::Result<u32> {
    // struct ethtool_channels: cmd, then max_rx, max_tx, max_other,
    // max_combined, rx_count, tx_count, other_count, combined_count.
    let mut channels = [0u8; 36];
    channels[..4].copy_from_slice(&ETHTOOL_GCHANNELS.to_ne_bytes());
    ethtool(interface, &mut channels)?;
    parse_rx_channels(&channels)
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no rx channels reported"))
}

/// `rx_count + combined_count` of an `ethtool_channels` answer, when not 0.
fn parse_rx_channels(buf: &[u8]) -> Option<u32> {
    let word = |at: usize| {
        buf.get(at..)
            .and_then(<[u8]>::first_chunk::<4>)
            .map(|b| u32::from_ne_bytes(*b))
    };
    let rx = word(20)?.checked_add(word(32)?)?;
    (rx > 0).then_some(rx)
}

/// The size of the one string set asked for in an `ethtool_sset_info`
/// answer, if the kernel has it.
fn parse_sset_count(info: &[u8]) -> Option<usize> {
    let mask = u64::from_ne_bytes(*info.get(8..)?.first_chunk::<8>()?);
    if mask == 0 {
        return None;
    }
    let count = u32::from_ne_bytes(*info.get(16..)?.first_chunk::<4>()?) as usize;
    (1..=MAX_FEATURES).contains(&count).then_some(count)
}

/// The names of an `ethtool_gstrings` answer (its `len`, bounded by the buffer).
fn parse_strings(buf: &[u8]) -> Vec<String> {
    let len = buf
        .get(8..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |b| u32::from_ne_bytes(*b) as usize);
    buf.get(12..)
        .unwrap_or_default()
        .chunks_exact(ETH_GSTRING_LEN)
        .take(len)
        .map(c_string)
        .collect()
}

/// The `active` word of each block of an `ethtool_gfeatures` answer.
fn parse_active_words(buf: &[u8], words: usize) -> Vec<u32> {
    buf.get(8..)
        .unwrap_or_default()
        .chunks_exact(16)
        .take(words)
        .map(|block| u32::from_ne_bytes([block[8], block[9], block[10], block[11]]))
        .collect()
}

/// A NUL-padded C string.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// One `SIOCETHTOOL` call on `interface`, with the command structure in
/// `buf` (its first u32 is the command). Only the get commands above are
/// sent; each writes back at most the size that `buf` was made for.
fn ethtool(interface: &str, buf: &mut [u8]) -> io::Result<()> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{interface:?} is not an interface name"),
        ));
    }
    // SAFETY: socket() takes integer arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data (a name array and a union of plain
    // data and a pointer): all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, &from) in request.ifr_name.iter_mut().zip(name) {
        *to = from as libc::c_char;
    }
    request.ifr_ifru.ifru_data = buf.as_mut_ptr().cast();
    // SAFETY: `socket` is open and `request` is a valid ifreq naming the
    // device (NUL-terminated: zeroed beyond the checked name). Its data
    // pointer is `buf`, alive and exclusively borrowed for the call; each
    // command sent here makes the kernel read its fixed header from `buf`
    // and write back no more than `buf` holds: GDRVINFO, GSSET_INFO (one
    // set) and GRXFH write fixed structures smaller than their buffers;
    // GSTRINGS writes the feature set's names, whose count (a kernel
    // constant) sized `buf`; GFEATURES writes at most the `size` blocks
    // given.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &raw mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_channels_add_rx_only_and_combined_and_zero_is_unknown() {
        let answer = |rx: u32, combined: u32| {
            let mut buf = [0u8; 36];
            buf[..4].copy_from_slice(&ETHTOOL_GCHANNELS.to_ne_bytes());
            buf[4..8].copy_from_slice(&63u32.to_ne_bytes()); // max_rx: not what is in use
            buf[20..24].copy_from_slice(&rx.to_ne_bytes());
            buf[32..36].copy_from_slice(&combined.to_ne_bytes());
            buf
        };
        assert_eq!(parse_rx_channels(&answer(0, 8)), Some(8), "mlx5, netvsc");
        assert_eq!(parse_rx_channels(&answer(1, 0)), Some(1), "veth");
        assert_eq!(parse_rx_channels(&answer(2, 4)), Some(6));
        assert_eq!(parse_rx_channels(&answer(0, 0)), None);
        assert_eq!(parse_rx_channels(&answer(u32::MAX, 1)), None);
        assert_eq!(parse_rx_channels(&[0u8; 30]), None, "cut short");
    }

    #[test]
    fn feature_names_and_words_parse_and_are_looked_up_by_name() {
        let mut info = [0u8; 24];
        info[8..16].copy_from_slice(&(1u64 << ETH_SS_FEATURES).to_ne_bytes());
        info[16..20].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(parse_sset_count(&info), Some(40));
        info[8..16].copy_from_slice(&0u64.to_ne_bytes());
        assert_eq!(parse_sset_count(&info), None, "set not supported");

        let names = ["rx-checksum", "rx-lro", "rx-gro-hw"];
        let mut strings = vec![0u8; 12 + 3 * ETH_GSTRING_LEN];
        strings[8..12].copy_from_slice(&3u32.to_ne_bytes());
        for (i, name) in names.iter().enumerate() {
            let at = 12 + i * ETH_GSTRING_LEN;
            strings[at..at + name.len()].copy_from_slice(name.as_bytes());
        }
        let parsed = parse_strings(&strings);
        assert_eq!(parsed, names);
        for cut in 0..strings.len() {
            assert!(parse_strings(&strings[..cut]).len() <= 3);
        }

        // One block: available, requested, active (bits 0 and 2), never_changed.
        let mut blocks = vec![0u8; 8 + 16];
        blocks[16..20].copy_from_slice(&0b101u32.to_ne_bytes());
        let features = Features::new(parsed, parse_active_words(&blocks, 1));
        assert_eq!(features.active("rx-checksum"), Some(true));
        assert_eq!(features.active("rx-lro"), Some(false));
        assert_eq!(features.active("rx-gro-hw"), Some(true));
        assert_eq!(features.active("no-such-feature"), None);
        assert!(parse_active_words(&blocks[..20], 1).is_empty(), "cut block");
    }

    #[test]
    fn hash_fields_read_as_ethtool_writes_them() {
        let sdfn = HashFields(0xf0);
        assert!(sdfn.has_ports());
        assert_eq!(sdfn.letters(), "sdfn");
        let sd = HashFields(HashFields::IP_SRC | HashFields::IP_DST);
        assert!(!sd.has_ports());
        assert_eq!(sd.letters(), "sd");
        assert_eq!(HashFields(0).letters(), "-");
    }

    #[test]
    fn a_bad_name_is_refused_before_any_ioctl() {
        let mut buf = [0u8; 16];
        for name in ["", "a-name-longer-than-15", "nul\0"] {
            let e = ethtool(name, &mut buf).expect_err(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
