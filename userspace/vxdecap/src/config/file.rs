//! The TOML file as written (serde types), and its values turned into the
//! typed [`Settings`](super::Settings) fields: each value says what it
//! expects and what it found, and routes are built from their keys
//! directly.

use std::time::Duration;

use serde::Deserialize;
use vxdecap_wire::vxlan::MAX_VNI;

use super::{err, ConfigError};
use crate::analyzer::{OutputFormat, OutputOptions, Rotation, RouteMatch, RouteSpec, RouteTarget};
use crate::error::ParseError;
use crate::filter::InnerFilter;
use crate::runtime::config::QueueSelection;
use crate::select::{check_list, parse_list, Written};
use crate::steer::allow::{parse_vnis, Allowlist};

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub(super) interface: Option<String>,
    pub(super) ports: Option<Vec<u16>>,
    pub(super) geneve_ports: Option<Vec<u16>>,
    pub(super) cloud: Option<String>,
    #[serde(rename = "max_tunnel_depth")]
    pub(super) max_depth: Option<u8>,
    pub(super) queues: Option<ListValue>,
    pub(super) cpus: Option<ListValue>,
    pub(super) mode: Option<String>,
    pub(super) metrics: Option<String>,
    pub(super) lossless: Option<bool>,
    pub(super) filter: Option<String>,
    pub(super) tap: Option<String>,
    pub(super) output: Option<OutputSection>,
    pub(super) allow: Option<AllowSection>,
    #[serde(default)]
    pub(super) route: Vec<RouteSection>,
}

/// `[allow]`: the allowlists enforced in XDP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowSection {
    /// Outer source addresses or prefixes.
    #[serde(default)]
    sources: Vec<String>,
    /// VNIs: `"27,100-199"` or `[27, "100-199"]`.
    vnis: Option<Vec<VniValue>>,
    /// An allowlist file, merged with these and read again on SIGHUP.
    file: Option<String>,
}

/// `"all"`, `"0,2-3"` or `[0, 2, 3]`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(super) enum ListValue {
    Numbers(Vec<usize>),
    Text(String),
}

// Each value type says what it expects and what it found (serde's untagged
// enums only say that nothing matched).
impl TryFrom<toml::Value> for ListValue {
    type Error = ParseError;

    fn try_from(value: toml::Value) -> Result<Self, ParseError> {
        let bad = |found: &toml::Value| {
            ParseError::new(format!("expected a list of queues or CPUs such as \"0,2-3\" or [0, 1] (or \"all\" for queues), found {found}"))
        };
        match &value {
            toml::Value::String(text) => Ok(Self::Text(text.clone())),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(|n| n as usize)
                        .ok_or_else(|| bad(item))
                })
                .collect::<Result<_, _>>()
                .map(ListValue::Numbers),
            other => Err(bad(other)),
        }
    }
}

impl ListValue {
    /// The text of the value (an array as `0,1`).
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Numbers(list) => {
                let list: Vec<String> = list.iter().map(usize::to_string).collect();
                list.join(",")
            }
        }
    }

    /// The rx queues: `all` or a list (`what` names the key in errors).
    pub(super) fn queues(self, what: &str) -> Result<Written<QueueSelection>, ParseError> {
        let text = self.text();
        let value = match self {
            Self::Text(text) => QueueSelection::parse(&text, what)?,
            Self::Numbers(list) => {
                check_list(&list, what)?;
                QueueSelection::List(list.into_iter().map(|q| q as u32).collect())
            }
        };
        Ok(Written { value, text })
    }

    /// A list of CPUs.
    pub(super) fn cpus(self, what: &str) -> Result<Written<Vec<usize>>, ParseError> {
        let text = self.text();
        let value = match self {
            Self::Text(text) => parse_list(&text, what)?,
            Self::Numbers(list) => check_list(&list, what).map(|()| list)?,
        };
        Ok(Written { value, text })
    }
}

/// `27` or `"100-199"`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "toml::Value")]
enum VniValue {
    Number(u32),
    Text(String),
}

impl TryFrom<toml::Value> for VniValue {
    type Error = ParseError;

    fn try_from(value: toml::Value) -> Result<Self, ParseError> {
        match &value {
            toml::Value::Integer(n) if (0..=i64::from(MAX_VNI)).contains(n) => {
                Ok(Self::Number(*n as u32))
            }
            toml::Value::String(text) => Ok(Self::Text(text.clone())),
            other => Err(ParseError::new(format!(
                "expected a VNI from 0 to {MAX_VNI} such as 27, or a range such as \"100-199\", found {other}"
            ))),
        }
    }
}

/// `100` (million bytes) or `"512k"`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "toml::Value")]
enum SizeValue {
    Millions(u64),
    Text(String),
}

impl TryFrom<toml::Value> for SizeValue {
    type Error = ParseError;

    fn try_from(value: toml::Value) -> Result<Self, ParseError> {
        match &value {
            toml::Value::Integer(n) if *n > 0 => Ok(Self::Millions(*n as u64)),
            toml::Value::String(text) => Ok(Self::Text(text.clone())),
            other => Err(ParseError::new(format!(
                "file_size: expected a size such as 100 (MB), \"512k\" or \"2g\", found {other}"
            ))),
        }
    }
}

/// Format and rotation keys, shared by `[output]` and `[[route]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    format: Option<String>,
    file_size: Option<SizeValue>,
    rotate_seconds: Option<u64>,
    file_count: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputSection {
    pub(super) write: Option<String>,
    #[serde(flatten)]
    file: FileKeys,
}

impl OutputSection {
    /// `-w`'s format and rotation.
    pub(super) fn options(&self) -> Result<OutputOptions, ConfigError> {
        file_options(&self.file, "[output]")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteSection {
    #[serde(default)]
    default: bool,
    #[serde(default)]
    vni: Vec<VniValue>,
    #[serde(default)]
    src: Vec<String>,
    #[serde(default)]
    tunnel: Vec<String>,
    #[serde(default)]
    gwlbe: Vec<String>,
    #[serde(default)]
    direction: Vec<String>,
    filter: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    file: FileKeys,
}

/// tcpdump's -C: millions of bytes, or KiB/MiB/GiB with a k/m/g suffix.
pub fn parse_file_size(text: &str) -> Result<u64, ParseError> {
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1 << 10),
        Some((at, 'm' | 'M')) => (&text[..at], 1 << 20),
        Some((at, 'g' | 'G')) => (&text[..at], 1 << 30),
        _ => (text, 1_000_000),
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| {
            ParseError::new(format!(
                "{text:?} is not a file size such as 100 (MB), 512k or 2g"
            ))
        })
}

fn file_options(keys: &FileKeys, place: &str) -> Result<OutputOptions, ConfigError> {
    let format = match keys.format.as_deref() {
        None => None,
        Some("pcap") => Some(OutputFormat::Pcap),
        Some("pcapng") => Some(OutputFormat::Pcapng),
        Some(other) => {
            return Err(err(format!(
                "{place}: format = {other:?}: use \"pcap\" or \"pcapng\""
            )))
        }
    };
    let file_size = match &keys.file_size {
        None => None,
        Some(SizeValue::Millions(n)) => Some(n.checked_mul(1_000_000).ok_or_else(|| {
            err(format!(
                "{place}: file_size: {n} million bytes is more than a file can hold"
            ))
        })?),
        Some(SizeValue::Text(t)) => {
            Some(parse_file_size(t).map_err(|e| err(format!("{place}: file_size: {e}")))?)
        }
    };
    if keys.rotate_seconds == Some(0) {
        return Err(err(format!("{place}: rotate_seconds must be at least 1")));
    }
    if keys.file_count == Some(0) {
        return Err(err(format!("{place}: file_count must be at least 1")));
    }
    Ok(OutputOptions {
        format,
        rotation: Rotation {
            file_size,
            interval: keys.rotate_seconds.map(Duration::from_secs),
            files: keys.file_count,
        },
        ..OutputOptions::default()
    })
}

impl RouteSection {
    /// The route `[[route]]` number `n` describes, built from its keys (its
    /// label is the rule as `--route` would write it).
    pub(super) fn spec(&self, n: usize) -> Result<RouteSpec, ConfigError> {
        let place = format!("[[route]] number {n}");
        let to = self.to.as_deref().ok_or_else(|| {
            err(format!(
                "{place}: add to = \"FILE\", \"tap:NAME\" or \"drop\""
            ))
        })?;
        let selects = !self.vni.is_empty()
            || !self.src.is_empty()
            || !self.tunnel.is_empty()
            || !self.gwlbe.is_empty()
            || !self.direction.is_empty()
            || self.filter.is_some();
        if self.default && selects {
            return Err(err(format!(
                "{place}: a default route matches everything: remove vni, src, tunnel, gwlbe, direction and filter, or default = true"
            )));
        }
        if !self.default && !selects {
            return Err(err(format!(
                "{place}: say which frames it takes (vni, src, tunnel, gwlbe, direction, filter) or set default = true"
            )));
        }
        let target = RouteTarget::parse(to);
        let rule = format!(
            "{} -> {}",
            self.label(),
            target
                .as_ref()
                .map_or_else(|_| to.trim().to_owned(), ToString::to_string)
        );
        let at = |e: ParseError| err(format!("{place}: route {rule:?}: {e}"));
        let mut matcher = RouteMatch::any();
        for vni in &self.vni {
            matcher.vnis.push(match vni {
                VniValue::Number(n) => (*n, *n),
                VniValue::Text(t) => RouteMatch::parse_vni(t.trim()).map_err(at)?,
            });
        }
        for source in &self.src {
            matcher
                .sources
                .push(RouteMatch::parse_source(source.trim()).map_err(at)?);
        }
        for tunnel in &self.tunnel {
            matcher
                .tunnels
                .push(RouteMatch::parse_tunnel(tunnel.trim()).map_err(at)?);
        }
        for endpoint in &self.gwlbe {
            matcher
                .gwlb_endpoints
                .push(RouteMatch::parse_endpoint(endpoint.trim()).map_err(at)?);
        }
        for direction in &self.direction {
            matcher
                .directions
                .push(RouteMatch::parse_direction(direction.trim()).map_err(at)?);
        }
        if let Some(expression) = &self.filter {
            if expression.trim().is_empty() {
                return Err(at(
                    "filter= needs an expression such as `tcp port 80`".into()
                ));
            }
            let filter = InnerFilter::compile(expression.trim())
                .map_err(|e| at(ParseError::new(e.to_string())))?;
            matcher.filter = Some(filter);
        }
        Ok(RouteSpec {
            matcher,
            target: target.map_err(at)?,
            output: file_options(&self.file, &place)?,
            rule,
        })
    }

    /// The selector as `--route` writes it: `default`, or
    /// `vni=…,src=…,filter=…`.
    fn label(&self) -> String {
        if self.default {
            return "default".to_owned();
        }
        let mut keys = Vec::new();
        if !self.vni.is_empty() {
            let vnis: Vec<String> = self
                .vni
                .iter()
                .map(|v| match v {
                    VniValue::Number(n) => n.to_string(),
                    VniValue::Text(t) => t.trim().to_owned(),
                })
                .collect();
            keys.push(format!("vni={}", vnis.join(",")));
        }
        if !self.src.is_empty() {
            keys.push(format!("src={}", self.src.join(",")));
        }
        for (key, values) in [
            ("tunnel", &self.tunnel),
            ("gwlbe", &self.gwlbe),
            ("direction", &self.direction),
        ] {
            if !values.is_empty() {
                keys.push(format!("{key}={}", values.join(",")));
            }
        }
        if let Some(filter) = &self.filter {
            keys.push(format!("filter={}", filter.trim()));
        }
        keys.join(",")
    }
}

impl AllowSection {
    /// The lists, checked: every prefix and VNI parses, within the XDP
    /// maps' sizes, and the file (when given) reads and parses.
    pub(super) fn allowlist(self) -> Result<(Allowlist, Option<String>), ConfigError> {
        let mut allow = Allowlist::default();
        for source in &self.sources {
            allow
                .add_source_text(source)
                .map_err(|e| err(format!("[allow] sources: {e}")))?;
        }
        for vni in self.vnis.iter().flatten() {
            let vnis = match vni {
                VniValue::Number(n) => std::iter::once(*n).collect(),
                VniValue::Text(t) => {
                    parse_vnis(t).map_err(|e| err(format!("[allow] vnis: {e}")))?
                }
            };
            allow
                .add_vnis(vnis)
                .map_err(|e| err(format!("[allow] vnis: {e}")))?;
        }
        if let Some(file) = &self.file {
            Allowlist::read(std::path::Path::new(file))
                .map_err(|e| err(format!("[allow] file: {e}")))?;
        }
        Ok((allow, self.file))
    }
}
