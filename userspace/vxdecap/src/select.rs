//! What users select, as they write it: tunnels in allowlists and routes
//! (outer source prefixes, [`Cidr`]; VNIs or VNI ranges,
//! [`parse_vni_range`]), and rx queues and CPUs ([`parse_list`]). One
//! parser each, whoever reads the text (flags, the config file, the
//! allow file, routes).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use vxdecap_wire::vxlan::MAX_VNI;

use crate::error::ParseError;

/// An address prefix such as `10.1.0.0/16` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` lies in the prefix (IPv4 and IPv6 never mix).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(ip).into(), self.prefix, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), self.prefix, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

#[inline]
fn mask(value: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (128 - u32::from(prefix)) >> (128 - u32::from(bits));
    value & keep
}

impl FromStr for Cidr {
    type Err = ParseError;

    /// `10.1.0.0/16`, `2001:db8::/32` or a bare address (a host prefix);
    /// host bits are cleared.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParseError::new(format!(
                "{text:?} is not an address or prefix such as 10.1.0.0/16 or fd00::/8"
            ))
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.trim().parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(ParseError::new(format!(
                "{text:?}: prefix /{prefix} is longer than {bits} bits"
            )));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4((mask(u32::from(a).into(), prefix, 32) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), prefix, 128).into()),
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a VNI or VNI range does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadVni {
    /// Not a number (or not `N-M`).
    NotANumber,
    /// Above 2²⁴−1, or a range from high to low.
    OutOfRange,
}

/// `27` or `100-199` (inclusive), each VNI within 24 bits, low to high.
pub fn parse_vni_range(text: &str) -> Result<(u32, u32), BadVni> {
    let number = |t: &str| t.trim().parse::<u32>().map_err(|_| BadVni::NotANumber);
    let (lo, hi) = if let Some((lo, hi)) = text.split_once('-') {
        (number(lo)?, number(hi)?)
    } else {
        let v = number(text)?;
        (v, v)
    };
    if lo > hi || hi > MAX_VNI {
        return Err(BadVni::OutOfRange);
    }
    Ok((lo, hi))
}

/// Parses a list such as `0,2-3` into `[0, 2, 3]`, in the order written;
/// a number given twice is an error (`what` names the flag or key).
pub fn parse_list(text: &str, what: &str) -> Result<Vec<usize>, ParseError> {
    let bad = || ParseError::new(format!("{what} {text:?} is not a list such as 0,2-3"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = if let Some((lo, hi)) = part.split_once('-') {
            (
                lo.trim().parse().map_err(|_| bad())?,
                hi.trim().parse().map_err(|_| bad())?,
            )
        } else {
            let v: usize = part.trim().parse().map_err(|_| bad())?;
            (v, v)
        };
        if lo > hi || hi - lo > 4096 {
            return Err(bad());
        }
        for v in lo..=hi {
            if out.contains(&v) {
                return Err(ParseError::new(format!("{what} names {v} twice")));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// Checks a list given as numbers (`[0, 1]` in the config file) as
/// [`parse_list`] checks a written one.
pub fn check_list(list: &[usize], what: &str) -> Result<(), ParseError> {
    for (i, v) in list.iter().enumerate() {
        if list[..i].contains(v) {
            return Err(ParseError::new(format!("{what} names {v} twice")));
        }
    }
    Ok(())
}

/// A setting as the user wrote it (`0,2-3`), and what it means: printed
/// back as written, used as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    /// What it means.
    pub value: T,
    /// The text it was read from.
    pub text: String,
}

impl<T> fmt::Display for Written<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_normalize_and_match() {
        let c: Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert!(c.contains("10.1.255.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let host: Cidr = "fd00::4".parse().unwrap();
        assert_eq!(host.prefix, 128);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Cidr = "fd00:1::/32".parse().unwrap();
        assert!(v6.contains("fd00:1:ffff::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
    }

    #[test]
    fn cidrs_match_their_family_and_prefix() {
        let c = "10.1.7.9/16".parse::<Cidr>().expect("cidr");
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert!(c.contains("10.1.255.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:10.1.0.1".parse().unwrap()));
        let any = "0.0.0.0/0".parse::<Cidr>().expect("cidr");
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        let host = "2001:db8::1".parse::<Cidr>().expect("host");
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        for bad in ["10.1.0.0/33", "10.1/8", "x", "::/129", "10.0.0.0/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vni_ranges_stay_within_24_bits() {
        assert_eq!(parse_vni_range("27"), Ok((27, 27)));
        assert_eq!(parse_vni_range(" 100 - 199 "), Ok((100, 199)));
        assert_eq!(parse_vni_range("16777215"), Ok((MAX_VNI, MAX_VNI)));
        assert_eq!(parse_vni_range("16777216"), Err(BadVni::OutOfRange));
        assert_eq!(parse_vni_range("9-3"), Err(BadVni::OutOfRange));
        assert_eq!(parse_vni_range("1-2-3"), Err(BadVni::NotANumber));
        assert_eq!(parse_vni_range("x"), Err(BadVni::NotANumber));
    }

    #[test]
    fn lists_parse_in_order_and_refuse_repeats() {
        assert_eq!(parse_list("0,2-3", "--queues"), Ok(vec![0, 2, 3]));
        assert_eq!(parse_list("3,1", "--cpus"), Ok(vec![3, 1]));
        assert_eq!(
            parse_list("x", "--queues").unwrap_err().to_string(),
            "--queues \"x\" is not a list such as 0,2-3"
        );
        assert_eq!(
            parse_list("1,0-2", "--cpus").unwrap_err().to_string(),
            "--cpus names 1 twice"
        );
        assert!(check_list(&[0, 1], "queues").is_ok());
        assert!(check_list(&[1, 1], "queues").is_err());
    }
}
