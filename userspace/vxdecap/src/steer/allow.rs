//! Allowlists enforced in XDP: which outer sources and which VNIs may
//! reach the analyzers. Forged VXLAN from anywhere else is dropped in the
//! XDP program and counted (`drop_source_not_allowed`,
//! `drop_vni_not_allowed`), before it costs a socket or a worker anything.
//!
//! From the command line (`--allow-source CIDR`, repeatable; `--vni LIST`)
//! and/or a file (`--allow-file FILE`) that is read again on SIGHUP, so
//! the lists change at run time without reloading the program:
//!
//! ```text
//! # vxdecap allowlist: one rule per line
//! source 10.1.0.0/16      # a mirror source network (IPv4 or IPv6 CIDR, or one address)
//! source fd00::4
//! vni 27,100-199          # VNIs; several lines add up
//! ```
//! No `source` rule means any source; no `vni` rule means any VNI;
//! `source any` and `vni any` say so on purpose.
//!
//! The lists fail closed. A file with no rule, a rule with nothing after
//! it, or a last line without its newline (a file cut short, or still
//! being written: `10.1.0.0/16` cut to `10.1.0.0/1` would allow far more)
//! is an error naming the line. A reload may narrow a list or open it with
//! `any`, but a list in force that the new file would open only by saying
//! nothing about it stays in force ([`Allowlist::check_reload`]): an
//! emptied or truncated file never becomes "allow everything".

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use vxdecap_wire::vxlan::MAX_VNI;

use crate::error::ParseError;
pub use crate::select::Cidr;
use crate::select::{parse_vni_range, BadVni};

/// Largest number of source prefixes (per address family) and of VNIs:
/// the sizes of the XDP maps (xdp-prog/vxdecap_shared.h).
pub const MAX_SOURCES: usize = 1024;
/// See [`MAX_SOURCES`].
pub const MAX_VNIS: usize = 65536;

/// Parses `27,100-199` into VNIs (each ≤ 2²⁴−1, at most [`MAX_VNIS`] in all).
pub fn parse_vnis(text: &str) -> Result<BTreeSet<u32>, ParseError> {
    let bad = || {
        ParseError::new(format!(
            "VNI list {text:?} is not a list such as 27,100-199"
        ))
    };
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = parse_vni_range(part).map_err(|e| match e {
            BadVni::NotANumber => bad(),
            BadVni::OutOfRange => ParseError::new(format!(
                "VNI range {part:?} is invalid: VNIs go from 0 to {MAX_VNI}, low to high"
            )),
        })?;
        if (hi - lo) as usize >= MAX_VNIS || out.len() + (hi - lo) as usize >= MAX_VNIS {
            return Err(ParseError::new(format!(
                "VNI list {text:?} names more than {MAX_VNIS} VNIs"
            )));
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Which sources and VNIs may pass; empty means no restriction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Allowed outer source prefixes (empty: any source).
    pub sources: BTreeSet<Cidr>,
    /// Allowed VNIs (`None`: any VNI).
    pub vnis: Option<BTreeSet<u32>>,
    /// `source any` was written: every source, on purpose (wins over `sources`).
    pub any_source: bool,
    /// `vni any` was written: every VNI, on purpose (wins over `vnis`).
    pub any_vni: bool,
}

impl Allowlist {
    /// True when neither list restricts anything.
    pub fn is_open(&self) -> bool {
        !self.restricts_sources() && !self.restricts_vnis()
    }

    /// True when only the listed sources may pass.
    pub fn restricts_sources(&self) -> bool {
        !self.any_source && !self.sources.is_empty()
    }

    /// True when only the listed VNIs may pass.
    pub fn restricts_vnis(&self) -> bool {
        !self.any_vni && self.vnis.is_some()
    }

    /// Checks that `next` may replace this list, the one in force, on a
    /// reload: a list that is closed now may only be opened by `source
    /// any` / `vni any`, never by a file that no longer names any source or
    /// VNI (emptied, truncated, half written).
    pub fn check_reload(&self, next: &Self) -> Result<(), ParseError> {
        if self.restricts_sources() && !next.restricts_sources() && !next.any_source {
            return Err(ParseError::new(format!(
                "it names no source, which would allow every source instead of {}: write `source any` to mean that",
                list_of(&self.sources)
            )));
        }
        if self.restricts_vnis() && !next.restricts_vnis() && !next.any_vni {
            return Err(ParseError::new(format!(
                "it names no VNI, which would allow every VNI instead of {} VNI(s): write `vni any` to mean that",
                self.vnis.as_ref().map_or(0, BTreeSet::len)
            )));
        }
        Ok(())
    }

    /// Adds a source prefix.
    pub fn add_source(&mut self, cidr: Cidr) -> Result<(), ParseError> {
        self.sources.insert(cidr);
        let family = |v4: bool| {
            self.sources
                .iter()
                .filter(|c| c.addr.is_ipv4() == v4)
                .count()
        };
        if family(true) > MAX_SOURCES || family(false) > MAX_SOURCES {
            return Err(ParseError::new(format!(
                "more than {MAX_SOURCES} source prefixes of one address family"
            )));
        }
        Ok(())
    }

    /// Adds VNIs.
    pub fn add_vnis(&mut self, vnis: BTreeSet<u32>) -> Result<(), ParseError> {
        let set = self.vnis.get_or_insert_with(BTreeSet::new);
        set.extend(vnis);
        if set.len() > MAX_VNIS {
            return Err(ParseError::new(format!("more than {MAX_VNIS} VNIs")));
        }
        Ok(())
    }

    /// Adds a source prefix written as text (`10.1.0.0/16`, `fd00::4`).
    pub fn add_source_text(&mut self, text: &str) -> Result<(), ParseError> {
        self.add_source(text.parse()?)
    }

    /// Adds VNIs written as a list such as `27,100-199`.
    pub fn add_vni_text(&mut self, text: &str) -> Result<(), ParseError> {
        self.add_vnis(parse_vnis(text)?)
    }

    /// Both lists merged: what either allows passes (`any` in either wins).
    pub fn merged(&self, other: &Self) -> Result<Self, ParseError> {
        let mut out = self.clone();
        for &c in &other.sources {
            out.add_source(c)?;
        }
        if let Some(v) = &other.vnis {
            out.add_vnis(v.clone())?;
        }
        out.any_source |= other.any_source;
        out.any_vni |= other.any_vni;
        Ok(out)
    }

    /// True when a frame from `source` with `vni` may pass (what XDP checks).
    pub fn allows(&self, source: IpAddr, vni: u32) -> bool {
        self.allows_source(source) && self.allows_vni(vni)
    }

    /// Parses the allowlist file format (see the module documentation);
    /// errors name the line. A text with no rule, or whose last line has
    /// no newline, is refused: it may be a file cut short.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ParseError> {
        let mut list = Self::default();
        let mut rules = 0;
        let (mut any_source_line, mut source_line, mut any_vni_line, mut vni_line) =
            (None, None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let number = n + 1;
            let at = |e: ParseError| e.at(format_args!("{origin}:{number}"));
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let words: Vec<&str> = rest
                .split([' ', '\t', ','])
                .filter(|w| !w.is_empty())
                .collect();
            match keyword {
                "source" if words == ["any"] => {
                    list.any_source = true;
                    any_source_line.get_or_insert(number);
                }
                "source" if words.is_empty() => {
                    return Err(at(ParseError::new(
                        "`source` needs an address or prefix (source 10.1.0.0/16) or `any`",
                    )))
                }
                "source" => {
                    for word in words {
                        list.add_source_text(word).map_err(at)?;
                    }
                    source_line.get_or_insert(number);
                }
                "vni" if words == ["any"] => {
                    list.any_vni = true;
                    any_vni_line.get_or_insert(number);
                }
                "vni" if words.is_empty() => {
                    return Err(at(ParseError::new(
                        "`vni` needs a list such as 27,100-199, or `any`",
                    )))
                }
                "vni" => {
                    list.add_vni_text(rest).map_err(at)?;
                    vni_line.get_or_insert(number);
                }
                other => {
                    return Err(at(ParseError::new(format!(
                        "unknown rule {other:?}: use `source CIDR` or `vni LIST` (or `any`)"
                    ))))
                }
            }
            rules += 1;
        }
        for (any, listed, what) in [
            (any_source_line, source_line, "source"),
            (any_vni_line, vni_line, "vni"),
        ] {
            if let (Some(any), Some(listed)) = (any, listed) {
                return Err(ParseError::new(format!(
                    "{origin}:{}: `{what} any` (line {any}) and a `{what}` list (line {listed}) contradict each other: keep one",
                    any.max(listed)
                )));
            }
        }
        if rules == 0 {
            return Err(ParseError::new(format!(
                "{origin}: no rules: add `source CIDR` and/or `vni LIST` lines (`source any` and `vni any` allow everything)"
            )));
        }
        if !text.ends_with('\n') {
            return Err(ParseError::new(format!(
                "{origin}:{}: the last line does not end with a newline, so the file may be cut short (or still being written): end it with a newline, and replace the file in one step (write a new file, then mv it over the old)",
                text.lines().count()
            )));
        }
        Ok(list)
    }

    /// Reads (a regular file of at most 1 MiB) and parses an allowlist file.
    pub fn read(path: &std::path::Path) -> Result<Self, ParseError> {
        let text = crate::files::read_text(path, crate::files::CONFIG_LIMIT).map_err(|e| {
            ParseError::new(format!("cannot read allowlist {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

fn list_of(sources: &BTreeSet<Cidr>) -> String {
    let list: Vec<String> = sources.iter().map(Cidr::to_string).collect();
    list.join(",")
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.restricts_sources() {
            write!(f, "sources {}", list_of(&self.sources))?;
        } else {
            f.write_str("any source")?;
        }
        match &self.vnis {
            Some(v) if self.restricts_vnis() => write!(f, ", {} VNI(s)", v.len()),
            _ => f.write_str(", any VNI"),
        }
    }
}

/// The same decisions as the XDP program, in user space: for reassembled
/// datagrams, whose VXLAN header XDP may not have seen (a first fragment
/// that ends inside it) and whose lists may have changed since their first
/// fragment passed. Not on the per-packet path: only reassembled datagrams
/// are checked here.
impl Allowlist {
    /// Whether the source list lets `source` through (any source when empty).
    pub fn allows_source(&self, source: IpAddr) -> bool {
        !self.restricts_sources() || self.sources.iter().any(|cidr| cidr.contains(source))
    }

    /// Whether the VNI list lets `vni` through (any VNI when there is none).
    pub fn allows_vni(&self, vni: u32) -> bool {
        !self.restricts_vnis() || self.vnis.as_ref().is_some_and(|vnis| vnis.contains(&vni))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_space_checks_agree_with_the_lists() {
        let open = Allowlist::default();
        assert!(open.allows_source("192.0.2.1".parse().unwrap()));
        assert!(open.allows_vni(4242));
        let mut allow = Allowlist::default();
        allow.add_source("10.99.0.0/24".parse().unwrap()).unwrap();
        allow.add_source("fd00::4".parse().unwrap()).unwrap();
        allow.add_vnis(parse_vnis("27,100-101").unwrap()).unwrap();
        assert!(allow.allows_source("10.99.0.1".parse().unwrap()));
        assert!(!allow.allows_source("10.99.1.1".parse().unwrap()));
        assert!(allow.allows_source("fd00::4".parse().unwrap()));
        assert!(!allow.allows_source("fd00::5".parse().unwrap()));
        assert!(allow.allows_vni(27) && allow.allows_vni(101));
        assert!(!allow.allows_vni(4242) && !allow.allows_vni(28));
        // `source any` / `vni any` open a list even where entries were merged in.
        allow.any_source = true;
        allow.any_vni = true;
        assert!(allow.allows_source("10.99.1.1".parse().unwrap()));
        assert!(allow.allows("192.0.2.9".parse().unwrap(), 4242));
    }

    #[test]
    fn vni_lists_are_bounded() {
        assert_eq!(
            parse_vnis("27, 100-102")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![27, 100, 101, 102]
        );
        assert!(parse_vnis("5-3").is_err());
        assert!(parse_vnis("16777216").is_err());
        assert!(parse_vnis("0-16777215").is_err(), "more than the map holds");
        assert!(parse_vnis("").is_err());
        assert!(parse_vnis("x").is_err());
    }

    #[test]
    fn files_parse_with_comments_and_errors_name_the_line() {
        let list = Allowlist::parse(
            "# mirrors\nsource 10.1.0.0/16 fd00::4\n\nvni 27\nvni 30-31 # more\n",
            "allow.txt",
        )
        .unwrap();
        assert_eq!(list.sources.len(), 2);
        assert_eq!(list.vnis.as_ref().map(BTreeSet::len), Some(3));
        assert!(list.allows("10.1.9.9".parse().unwrap(), 27));
        assert!(!list.allows("10.2.9.9".parse().unwrap(), 27));
        assert!(!list.allows("10.1.9.9".parse().unwrap(), 28));
        let err = Allowlist::parse("source 10.0.0.1\nport 4789\n", "allow.txt").unwrap_err();
        assert!(
            err.to_string().starts_with("allow.txt:2: unknown rule"),
            "{err}"
        );
        assert!(Allowlist::default().is_open());
        assert!(Allowlist::default().allows("192.0.2.1".parse().unwrap(), 5));
    }

    fn parse_err(text: &str) -> String {
        Allowlist::parse(text, "allow.txt")
            .expect_err(text)
            .to_string()
    }

    #[test]
    fn a_rule_without_a_value_is_an_error_not_an_open_list() {
        for (text, needle) in [
            (
                "source\nvni 42\n",
                "allow.txt:1: `source` needs an address or prefix",
            ),
            (
                "vni 42\nsource ,\n",
                "allow.txt:2: `source` needs an address or prefix",
            ),
            (
                "source 10.0.0.1\nvni\n",
                "allow.txt:2: `vni` needs a list such as 27,100-199, or `any`",
            ),
            (
                "source 10.0.0.1\nsource any\n",
                "allow.txt:2: `source any` (line 2) and a `source` list (line 1) contradict",
            ),
            (
                "vni any\nvni 5\n",
                "allow.txt:2: `vni any` (line 1) and a `vni` list (line 2) contradict",
            ),
            (
                "source 10.77.0.0/2",
                "allow.txt:1: the last line does not end with a newline",
            ),
            (
                "source 10.0.0.1\nvni 4",
                "allow.txt:2: the last line does not end with a newline",
            ),
            ("", "allow.txt: no rules"),
            ("\n", "allow.txt: no rules"),
            ("# all comments\n\n   # more\n", "allow.txt: no rules"),
            (
                "source 10.77.0\n",
                "allow.txt:1: \"10.77.0\" is not an address or prefix",
            ),
            ("sauce 10.0.0.1\n", "allow.txt:1: unknown rule \"sauce\""),
        ] {
            let e = parse_err(text);
            assert!(e.starts_with(needle), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn any_opens_a_list_on_purpose() {
        let list = Allowlist::parse("source any\nvni 42\n", "allow.txt").unwrap();
        assert!(list.any_source && !list.restricts_sources() && list.restricts_vnis());
        assert!(list.allows("192.0.2.1".parse().unwrap(), 42));
        assert!(!list.allows("192.0.2.1".parse().unwrap(), 43));
        assert_eq!(list.to_string(), "any source, 1 VNI(s)");
        let both = Allowlist::parse("source any\nvni any\n", "allow.txt").unwrap();
        assert!(both.is_open());
        // Merged with a flag's list, `any` still wins: the union of both.
        let mut flags = Allowlist::default();
        flags.add_source_text("10.0.0.1").unwrap();
        let merged = flags.merged(&both).unwrap();
        assert!(merged.is_open(), "{merged}");
        assert!(merged.allows("192.0.2.1".parse().unwrap(), 7));
    }

    #[test]
    fn a_reload_never_opens_a_closed_list_by_omission() {
        let old = Allowlist::parse("source 10.77.0.1\nvni 42\n", "allow.txt").unwrap();
        let narrower = Allowlist::parse("source 10.77.0.1/32\nvni 42\n", "allow.txt").unwrap();
        assert_eq!(old.check_reload(&narrower), Ok(()));
        let wider = Allowlist::parse("source 10.77.0.0/24\nvni 42,43\n", "allow.txt").unwrap();
        assert_eq!(old.check_reload(&wider), Ok(()));
        // Truncated after its source line: every VNI would pass.
        let truncated = Allowlist::parse("source 10.77.0.1\n", "allow.txt").unwrap();
        let e = old.check_reload(&truncated).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "it names no VNI, which would allow every VNI instead of 1 VNI(s): write `vni any`"
            ),
            "{e}"
        );
        let vnis_only = Allowlist::parse("vni 42\n", "allow.txt").unwrap();
        let e = old.check_reload(&vnis_only).unwrap_err().to_string();
        assert!(
            e.starts_with("it names no source, which would allow every source instead of 10.77.0.1/32: write `source any`"),
            "{e}"
        );
        // Opening on purpose is accepted.
        let opened = Allowlist::parse("source any\nvni any\n", "allow.txt").unwrap();
        assert_eq!(old.check_reload(&opened), Ok(()));
        // An open list in force may take anything.
        assert_eq!(Allowlist::default().check_reload(&vnis_only), Ok(()));
        assert_eq!(opened.check_reload(&vnis_only), Ok(()));
    }
}
