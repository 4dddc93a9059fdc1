//! The TOML configuration file (`vxdecap capture --config FILE`,
//! `vxdecap check-config FILE`) and the outputs a run builds from it.
//!
//! Every key is optional, and a flag given on the command line wins over
//! the file (a `--route` or `--port` given on the command line replaces the
//! file's list). See `examples/vxdecap.toml` for every key.
//!
//! ```
//! let settings = vxdecap::config::Settings::from_toml(r#"
//!     interface = "eth1"
//!     [[route]]
//!     vni = [27, "100-199"]
//!     to = "tenant-%Y%m%d%H%M.pcapng"
//!     rotate_seconds = 300
//!     [[route]]
//!     default = true
//!     to = "drop"
//! "#).unwrap();
//! assert_eq!(settings.routes[0].rule, "vni=27,100-199 -> tenant-%Y%m%d%H%M.pcapng");
//! settings.check().unwrap();
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::config::{CaptureConfig, CaptureMode, QueueSelection};
use crate::runtime::metrics_server::Endpoint;
use crate::steer::allow::Allowlist;
use vxdecap_wire::PortSet;

use crate::analyzer::{
    open_frame_output, Analyzer, CountAnalyzer, Filtered, OutputFormat, OutputOptions,
    PrintAnalyzer, Rotation, RouteSpec, RouteTarget, Router, TapWriter,
};
use crate::error::{error_chain, ParseError};
use crate::filter::InnerFilter;
use vxdecap_wire::vxlan::MAX_VNI;

/// A configuration that cannot be used; the message names the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<ParseError> for ConfigError {
    fn from(e: ParseError) -> Self {
        ConfigError(e.to_string())
    }
}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    interface: Option<String>,
    ports: Option<Vec<u16>>,
    queues: Option<ListValue>,
    cpus: Option<ListValue>,
    mode: Option<String>,
    metrics: Option<String>,
    lossless: Option<bool>,
    filter: Option<String>,
    tap: Option<String>,
    output: Option<OutputSection>,
    allow: Option<AllowSection>,
    #[serde(default)]
    route: Vec<RouteSection>,
}

/// `[allow]`: the allowlists enforced in XDP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSection {
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
enum ListValue {
    Numbers(Vec<u32>),
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
            toml::Value::String(text) => Ok(ListValue::Text(text.clone())),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad(item))
                })
                .collect::<Result<_, _>>()
                .map(ListValue::Numbers),
            other => Err(bad(other)),
        }
    }
}

impl ListValue {
    fn text(self) -> String {
        match self {
            ListValue::Text(t) => t,
            ListValue::Numbers(n) => n.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        }
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
                Ok(VniValue::Number(*n as u32))
            }
            toml::Value::String(text) => Ok(VniValue::Text(text.clone())),
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
            toml::Value::Integer(n) if *n > 0 => Ok(SizeValue::Millions(*n as u64)),
            toml::Value::String(text) => Ok(SizeValue::Text(text.clone())),
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
struct OutputSection {
    write: Option<String>,
    #[serde(flatten)]
    file: FileKeys,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    #[serde(default)]
    default: bool,
    #[serde(default)]
    vni: Vec<VniValue>,
    #[serde(default)]
    src: Vec<String>,
    filter: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    file: FileKeys,
}

/// A route as text (`vni=27 -> inner-27.pcapng`) and how its files are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// `SELECTOR -> OUTPUT`, as [`RouteSpec::parse`] reads it.
    pub rule: String,
    /// Format and rotation for a file output; unset parts come from the
    /// run's `-C`/`-G`/`-W`.
    pub output: OutputOptions,
}

/// The effective setup of a run: the file's values with the command line's on top.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Capture interface.
    pub interface: Option<String>,
    /// VXLAN UDP ports (empty: 4789).
    pub ports: Vec<u16>,
    /// Rx queues: `all` or a list.
    pub queues: Option<String>,
    /// Worker CPUs, a list.
    pub cpus: Option<String>,
    /// `auto`, `zerocopy`, `copy` or `skb`.
    pub mode: Option<String>,
    /// Prometheus endpoint.
    pub metrics: Option<Endpoint>,
    /// Wait for slow analyzers instead of dropping.
    pub lossless: bool,
    /// Inner filter applied in front of every output.
    pub filter: Option<String>,
    /// `-w`: every inner frame to this file (`-` for stdout).
    pub write: Option<String>,
    /// Format and rotation of `-w` (rotation also the default of route files).
    pub output: OutputOptions,
    /// `--tap`: every inner frame to this tap device.
    pub tap: Option<String>,
    /// Per-tenant routes, in order.
    pub routes: Vec<RouteRule>,
    /// Sources and VNIs allowed through (enforced in XDP).
    pub allow: Allowlist,
    /// Allowlist file, read again on SIGHUP.
    pub allow_file: Option<String>,
}

const MODES: [&str; 4] = ["auto", "zerocopy", "copy", "skb"];

impl Settings {
    /// Reads a configuration file.
    pub fn from_file(path: &str) -> Result<Settings, ConfigError> {
        let text = crate::files::read_text(std::path::Path::new(path), crate::files::CONFIG_LIMIT)
            .map_err(|e| err(format!("cannot read the config file {path}: {e}")))?;
        Settings::from_toml(&text).map_err(|e| err(format!("{path}: {}", e.0)))
    }

    /// Parses configuration text.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (a source excerpt); keep
            // it to one: the position and what is wrong.
            let what = e.message().trim().to_owned();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            // The list of keys helps with a misspelt one, not a bad value.
            let keys = if what.contains("unknown field") {
                " (keys: interface, ports, queues, cpus, mode, metrics, lossless, filter, tap, [output], [allow], [[route]]; see examples/vxdecap.toml)"
            } else {
                ""
            };
            err(format!("{at}{what}{keys}"))
        })?;
        let metrics = file
            .metrics
            .map(|m| {
                m.parse::<Endpoint>()
                    .map_err(|e| err(format!("metrics = {e}")))
            })
            .transpose()?;
        let (write, output) = match file.output {
            Some(section) => (section.write, file_options(&section.file, "[output]")?),
            None => (None, OutputOptions::default()),
        };
        let routes = file
            .route
            .iter()
            .enumerate()
            .map(|(i, r)| route_rule(r, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let (allow, allow_file) = match file.allow {
            Some(section) => allow_section(section)?,
            None => (Allowlist::default(), None),
        };
        Ok(Settings {
            allow,
            allow_file,
            interface: file.interface,
            ports: file.ports.unwrap_or_default(),
            queues: file.queues.map(ListValue::text),
            cpus: file.cpus.map(ListValue::text),
            mode: file.mode,
            metrics,
            lossless: file.lossless.unwrap_or(false),
            filter: file.filter.filter(|f| !f.trim().is_empty()),
            write,
            output,
            tap: file.tap,
            routes,
        })
    }

    /// Checks everything that can be checked without creating anything:
    /// the mode, the filters, the routes, rotation and file name patterns.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(mode) = &self.mode {
            if !MODES.contains(&mode.as_str()) {
                return Err(err(format!(
                    "mode = {mode:?}: use one of {}",
                    MODES.join(", ")
                )));
            }
        }
        if let Some(filter) = &self.filter {
            InnerFilter::compile(filter).map_err(|e| err(e.to_string()))?;
        }
        if let Some(name) = &self.tap {
            check_tap_name(name)?;
        }
        if let Some(path) = &self.write {
            check_file(path, &self.output).map_err(|e| err(format!("-w {path}: {e}")))?;
        }
        for rule in &self.routes {
            let spec = self.route_spec(rule)?;
            match &spec.target {
                RouteTarget::File(path) => check_file(path, &spec.output)
                    .map_err(|e| err(format!("route {:?}: {e}", rule.rule)))?,
                RouteTarget::Tap(name) => check_tap_name(name)?,
                RouteTarget::Drop => {}
            }
        }
        Ok(())
    }

    /// The live capture this setup describes: interface, ports, queues,
    /// CPUs, mode, metrics and allowlists (lists parsed and checked for
    /// repeats). The rest of a [`CaptureConfig`] keeps its defaults.
    pub fn capture_config(&self) -> Result<CaptureConfig, ConfigError> {
        let interface = self.interface.as_deref().ok_or_else(|| {
            err("no interface: give -i IFACE or interface = \"…\" in the --config file")
        })?;
        let mut config = CaptureConfig::new(interface);
        if !self.ports.is_empty() {
            config.ports = PortSet::new(&self.ports).map_err(|e| err(format!("--port: {e}")))?;
        }
        config.queues = match self.queues.as_deref() {
            None | Some("all") => QueueSelection::All,
            Some(list) => QueueSelection::List(
                parse_list(list, "--queues")?
                    .into_iter()
                    .map(|q| q as u32)
                    .collect(),
            ),
        };
        config.cpus = self
            .cpus
            .as_deref()
            .map(|c| parse_list(c, "--cpus"))
            .transpose()?;
        config.mode = match self.mode.as_deref() {
            None | Some("auto") => CaptureMode::Auto,
            Some("zerocopy") => CaptureMode::ZeroCopy,
            Some("copy") => CaptureMode::Copy,
            Some("skb") => CaptureMode::Skb,
            Some(other) => {
                return Err(err(format!(
                    "mode {other:?}: use one of {}",
                    MODES.join(", ")
                )))
            }
        };
        config.lossless = self.lossless;
        config.allow = self.allow.clone();
        config.allow_file = self.allow_file.as_ref().map(std::path::PathBuf::from);
        config.metrics = self.metrics.clone();
        Ok(config)
    }

    /// Everything `capture` checks before it starts that needs neither root
    /// nor creating anything, so that `check-config` and `capture` accept
    /// and refuse the same files: [`Settings::check`], the queue and CPU
    /// lists, and with an interface [`crate::runtime::preflight::check_setup`] (the
    /// interface, queues and CPUs of this machine, the allowlists). Only
    /// the metrics address is left to `capture`, which binds it: a capture
    /// still running may hold it. Returns warnings about settings that
    /// have no effect.
    ///
    /// `host: false` leaves out what depends on this machine (the
    /// interface, its queues, the CPUs, the output directories), for a file
    /// meant for another machine (`check-config --no-host-checks`).
    pub fn check_capture(&self, host: bool) -> Result<Vec<String>, ConfigError> {
        self.check()?;
        let mut warnings = self.warnings();
        let cpus = self
            .cpus
            .as_deref()
            .map(|c| parse_list(c, "--cpus"))
            .transpose()?;
        if let Some(queues) = self.queues.as_deref().filter(|q| *q != "all") {
            parse_list(queues, "--queues")?;
        }
        if !host {
            return Ok(warnings);
        }
        self.check_outputs_writable()?;
        if self.interface.is_some() {
            let config = self.capture_config()?;
            crate::runtime::preflight::check_setup(&config).map_err(|e| err(error_chain(&e)))?;
            warnings.extend(crate::runtime::preflight::warnings(&config));
        } else if let Some(cpus) = cpus {
            crate::runtime::cpus::check_cpus(&cpus).map_err(|e| err(error_chain(&e)))?;
        }
        Ok(warnings)
    }

    /// Checks that `-w` and the route files can be written where they are
    /// named (without creating them).
    pub fn check_outputs_writable(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.write {
            check_writable(path).map_err(|e| err(format!("cannot write {path}: {e}")))?;
        }
        for rule in &self.routes {
            if let RouteTarget::File(path) = self.route_spec(rule)?.target {
                check_writable(&path)
                    .map_err(|e| err(format!("route {:?}: cannot write {path}: {e}", rule.rule)))?;
            }
        }
        Ok(())
    }

    /// Settings that have no effect: routes after one that takes every
    /// frame.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut catch_all: Option<(usize, &str)> = None;
        for (i, rule) in self.routes.iter().enumerate() {
            if let Some((n, earlier)) = catch_all {
                warnings.push(format!(
                    "route {} ({}) comes after route {n} ({earlier}), which takes every frame: it never matches; move it up or remove it",
                    i + 1,
                    rule.rule
                ));
                continue;
            }
            let takes_all = self.route_spec(rule).is_ok_and(|spec| {
                let m = &spec.matcher;
                m.vnis.is_empty() && m.sources.is_empty() && m.filter.is_none()
            });
            if takes_all {
                catch_all = Some((i + 1, &rule.rule));
            }
        }
        warnings
    }

    /// The route `rule` with this run's defaults filled in.
    fn route_spec(&self, rule: &RouteRule) -> Result<RouteSpec, ConfigError> {
        let mut output = rule.output;
        if !output.rotation.is_rotating() && output.rotation.files.is_none() {
            output.rotation = self.output.rotation;
        }
        RouteSpec::parse(&rule.rule, output).map_err(|e| err(e.to_string()))
    }

    /// The files this run may write, with their format and rotation: `-w`
    /// (`-` for stdout) and every route to a file.
    pub fn file_outputs(&self) -> Result<Vec<(String, OutputOptions)>, ConfigError> {
        let mut outputs: Vec<(String, OutputOptions)> = self
            .write
            .iter()
            .map(|path| (path.clone(), self.output))
            .collect();
        for rule in &self.routes {
            let spec = self.route_spec(rule)?;
            if let RouteTarget::File(path) = spec.target {
                outputs.push((path, spec.output));
            }
        }
        Ok(outputs)
    }

    /// The effective setup, one item a line, as `check-config` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
        let _ = writeln!(out, "interface: {}", or(&self.interface, "(none: give -i)"));
        let ports = if self.ports.is_empty() {
            "4789".to_owned()
        } else {
            self.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "ports: {ports}");
        let _ = writeln!(out, "queues: {}", or(&self.queues, "all"));
        let _ = writeln!(
            out,
            "cpus: {}",
            or(&self.cpus, "one per queue, skipping core 0")
        );
        let _ = writeln!(out, "mode: {}", or(&self.mode, "auto"));
        let _ = writeln!(out, "lossless: {}", self.lossless);
        let _ = writeln!(
            out,
            "allowlist: {}{}",
            self.allow,
            self.allow_file.as_ref().map_or(String::new(), |f| format!(
                ", and the file {f} (re-read on SIGHUP)"
            ))
        );
        let _ = writeln!(
            out,
            "metrics: {}",
            self.metrics.as_ref().map_or("off".to_owned(), |m| {
                let addrs: Vec<String> = m.addrs.iter().map(SocketAddr::to_string).collect();
                if addrs == [m.text.clone()] {
                    m.text.clone()
                } else {
                    format!("{} ({})", m.text, addrs.join(", "))
                }
            })
        );
        let _ = writeln!(out, "inner filter: {}", or(&self.filter, "none"));
        if let Some(w) = &self.write {
            let _ = writeln!(out, "output: {w} ({})", describe_file(w, &self.output));
        }
        if let Some(t) = &self.tap {
            let _ = writeln!(out, "tap: {t}");
        }
        for (i, rule) in self.routes.iter().enumerate() {
            let detail = match self.route_spec(rule) {
                Ok(RouteSpec {
                    target: RouteTarget::File(path),
                    output,
                    ..
                }) => format!(" ({})", describe_file(&path, &output)),
                _ => String::new(),
            };
            let _ = writeln!(out, "route {}: {}{detail}", i + 1, rule.rule);
        }
        if self.write.is_none() && self.tap.is_none() && self.routes.is_empty() {
            let _ = writeln!(out, "output: one text line per frame on stdout");
        }
        out
    }

    /// Builds the analyzers this setup asks for (opening files, creating
    /// taps) and names them for the summary: `-w`, then the router, then the
    /// tap, each behind the inner filter; the printer when there is none;
    /// the counter alone for `count_only`.
    pub fn build_outputs(
        &self,
        count_only: bool,
    ) -> Result<(Vec<Box<dyn Analyzer>>, String), ConfigError> {
        self.check()?;
        let filter = self
            .filter
            .as_deref()
            .map(InnerFilter::compile)
            .transpose()
            .map_err(|e| err(e.to_string()))?;
        let mut analyzers: Vec<Box<dyn Analyzer>> = Vec::new();
        let mut names = Vec::new();
        if count_only {
            analyzers.push(Box::new(CountAnalyzer::new(Arc::default())));
            names.push("the counter (-q)".to_owned());
        }
        if let Some(path) = &self.write {
            analyzers.push(open_frame_output(path, &self.output).map_err(|e| err(e.to_string()))?);
            names.push(if path == "-" {
                "stdout".to_owned()
            } else {
                path.clone()
            });
        }
        if !self.routes.is_empty() {
            let specs = self
                .routes
                .iter()
                .map(|r| self.route_spec(r))
                .collect::<Result<Vec<_>, _>>()?;
            let router = Router::open(specs).map_err(|e| err(e.to_string()))?;
            names.push(format!("{} route(s)", router.len()));
            analyzers.push(Box::new(router));
        }
        if let Some(name) = &self.tap {
            analyzers.push(Box::new(
                TapWriter::create(name).map_err(|e| err(e.to_string()))?,
            ));
            names.push(format!("tap {name}"));
        }
        if analyzers.is_empty() {
            let printer = PrintAnalyzer::stdout().map_err(|e| err(format!("stdout: {e}")))?;
            analyzers.push(Box::new(printer));
            names.push("stdout (text)".to_owned());
        }
        if let Some(filter) = filter {
            analyzers = analyzers
                .into_iter()
                .map(|a| Box::new(Filtered::new(filter.clone(), a)) as Box<dyn Analyzer>)
                .collect();
        }
        Ok((analyzers, names.join(", ")))
    }
}

/// Rotation settings and, with -G, the strftime pattern of a file output.
/// The `[allow]` section, checked: every prefix and VNI parses, within the
/// XDP maps' sizes, and the file (when given) reads and parses.
fn allow_section(section: AllowSection) -> Result<(Allowlist, Option<String>), ConfigError> {
    let mut allow = Allowlist::default();
    for source in &section.sources {
        allow
            .add_source_text(source)
            .map_err(|e| err(format!("[allow] sources: {e}")))?;
    }
    if let Some(vnis) = section.vnis {
        let text = vnis
            .into_iter()
            .map(|v| match v {
                VniValue::Number(n) => n.to_string(),
                VniValue::Text(t) => t,
            })
            .collect::<Vec<_>>()
            .join(",");
        allow
            .add_vni_text(&text)
            .map_err(|e| err(format!("[allow] vnis: {e}")))?;
    }
    if let Some(file) = &section.file {
        Allowlist::read(std::path::Path::new(file))
            .map_err(|e| err(format!("[allow] file: {e}")))?;
    }
    Ok((allow, section.file))
}

fn check_file(path: &str, options: &OutputOptions) -> Result<(), ParseError> {
    options
        .rotation
        .check()
        .map_err(|e| ParseError::new(e.to_string()))?;
    if path == "-" && options.rotation.is_rotating() {
        return Err("stdout (-w -) cannot be rotated".into());
    }
    if options.rotation.interval.is_some() {
        crate::analyzer::FileNamer::new(path, true, options.rotation.files)
            .map_err(|e| ParseError::new(e.to_string()))?;
    }
    Ok(())
}

/// Whether a file can be created or written at `path` (a strftime pattern
/// for -G: a directory part with `%` is only known per file, and is left
/// to the writer).
fn check_writable(path: &str) -> Result<(), ParseError> {
    use nix::unistd::{access, AccessFlags};
    if path == "-" {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => std::path::Path::new("."),
        Some(d) => d,
        None => return Ok(()),
    };
    if dir.to_string_lossy().contains('%') {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Err(e) => return Err(format!("directory {}: {e}", dir.display()).into()),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display()).into()),
        Ok(_) => {}
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("it is a directory".into()),
        Ok(_) => access(path, AccessFlags::W_OK)
            .map_err(|e| ParseError::new(std::io::Error::from(e).to_string())),
        Err(_) => access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
            ParseError::new(format!(
                "directory {}: {}: check that it is writable",
                dir.display(),
                std::io::Error::from(e)
            ))
        }),
    }
}

/// The same check the tap makes before it is created.
fn check_tap_name(name: &str) -> Result<(), ConfigError> {
    crate::sys::tap::check_name(name).map_err(|e| err(e.to_string()))
}

fn describe_file(path: &str, options: &OutputOptions) -> String {
    let format = match options.format.unwrap_or(OutputFormat::for_path(path)) {
        OutputFormat::Pcap => "pcap",
        OutputFormat::Pcapng => "pcapng",
    };
    let r = &options.rotation;
    let mut parts = vec![format.to_owned()];
    if let Some(size) = r.file_size {
        parts.push(format!("new file every {size} bytes"));
    }
    if let Some(every) = r.interval {
        parts.push(format!("new file every {} s", every.as_secs()));
    }
    if let Some(n) = r.files {
        parts.push(format!("keep {n} files"));
    }
    parts.join(", ")
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
        Some(SizeValue::Millions(n)) => Some(
            parse_file_size(&n.to_string()).map_err(|e| err(format!("{place}: file_size: {e}")))?,
        ),
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

fn route_rule(r: &RouteSection, n: usize) -> Result<RouteRule, ConfigError> {
    let place = format!("[[route]] number {n}");
    let to = r.to.as_deref().ok_or_else(|| {
        err(format!(
            "{place}: add to = \"FILE\", \"tap:NAME\" or \"drop\""
        ))
    })?;
    let mut keys = Vec::new();
    if r.default {
        if !r.vni.is_empty() || !r.src.is_empty() || r.filter.is_some() {
            return Err(err(format!(
                "{place}: a default route matches everything: remove vni, src and filter, or default = true"
            )));
        }
    } else {
        if r.vni.is_empty() && r.src.is_empty() && r.filter.is_none() {
            return Err(err(format!(
                "{place}: say which frames it takes (vni, src, filter) or set default = true"
            )));
        }
        if !r.vni.is_empty() {
            let vnis: Vec<String> = r
                .vni
                .iter()
                .map(|v| match v {
                    VniValue::Number(n) => n.to_string(),
                    VniValue::Text(t) => t.trim().to_owned(),
                })
                .collect();
            keys.push(format!("vni={}", vnis.join(",")));
        }
        if !r.src.is_empty() {
            keys.push(format!("src={}", r.src.join(",")));
        }
        if let Some(filter) = &r.filter {
            keys.push(format!("filter={filter}"));
        }
    }
    let selector = if r.default {
        "default".to_owned()
    } else {
        keys.join(",")
    };
    let rule = format!("{selector} -> {}", to.trim());
    let output = file_options(&r.file, &place)?;
    // Parse now, so that an error points at the section.
    RouteSpec::parse(&rule, output).map_err(|e| err(format!("{place}: {e}")))?;
    Ok(RouteRule { rule, output })
}

/// Parses a list such as `0,2-3` into `[0, 2, 3]`; a number given twice is
/// an error (`what` names the flag or key).
pub fn parse_list(text: &str, what: &str) -> Result<Vec<usize>, ParseError> {
    let bad = || ParseError::new(format!("{what} {text:?} is not a list such as 0,2-3"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.trim().parse().map_err(|_| bad())?,
                hi.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let v: usize = part.trim().parse().map_err(|_| bad())?;
                (v, v)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_read() {
        let s = Settings::from_toml(
            r#"
            interface = "eth1"
            ports = [4789, 8472]
            queues = [0, 1]
            cpus = "2-3"
            mode = "copy"
            metrics = "127.0.0.1:9419"
            lossless = true
            filter = "not arp"
            tap = "vxtap0"
            [output]
            write = "all.pcapng"
            file_size = "512k"
            file_count = 4
            [[route]]
            vni = [27]
            src = ["10.0.2.0/24"]
            filter = "tcp port 80"
            to = "t27-%s.pcap"
            format = "pcap"
            rotate_seconds = 60
            [[route]]
            default = true
            to = "drop"
            "#,
        )
        .expect("valid");
        assert_eq!(s.interface.as_deref(), Some("eth1"));
        assert_eq!(s.ports, [4789, 8472]);
        assert_eq!(s.queues.as_deref(), Some("0,1"));
        assert_eq!(s.cpus.as_deref(), Some("2-3"));
        assert_eq!(s.mode.as_deref(), Some("copy"));
        assert!(s.lossless);
        assert_eq!(
            s.metrics.as_ref().map(|m| m.addrs.clone()),
            Some(vec!["127.0.0.1:9419".parse().unwrap()])
        );
        assert_eq!(s.output.rotation.file_size, Some(512 * 1024));
        assert_eq!(s.output.rotation.files, Some(4));
        assert_eq!(
            s.routes[0].rule,
            "vni=27,src=10.0.2.0/24,filter=tcp port 80 -> t27-%s.pcap"
        );
        assert_eq!(s.routes[0].output.format, Some(OutputFormat::Pcap));
        assert_eq!(
            s.routes[0].output.rotation.interval,
            Some(Duration::from_secs(60))
        );
        assert_eq!(s.routes[1].rule, "default -> drop");
        s.check().expect("checks");
        let text = s.render();
        assert!(text.contains("route 1: vni=27,src=10.0.2.0/24,filter=tcp port 80 -> t27-%s.pcap (pcap, new file every 60 s)"), "{text}");
        assert!(
            text.contains("output: all.pcapng (pcapng, new file every 524288 bytes, keep 4 files)"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_fix_on_one_line() {
        for (text, needle) in [
            ("interfce = \"eth1\"", "unknown field `interfce`"),
            ("ports = \"4789\"", "line 1"),
            ("mode = \"turbo\"", "use one of auto, zerocopy, copy, skb"),
            ("metrics = \"9419\"", "not ADDR:PORT"),
            ("filter = \"tcp prot 80\"", "man pcap-filter"),
            ("[[route]]\nvni = [27]", "add to = "),
            ("[[route]]\nto = \"a.pcap\"", "say which frames"),
            (
                "[[route]]\ndefault = true\nvni = [1]\nto = \"drop\"",
                "a default route matches everything",
            ),
            ("[[route]]\nvni = [\"9-3\"]\nto = \"a.pcap\"", "not a VNI"),
            (
                "[[route]]\nsrc = [\"10.0.0.0/99\"]\nto = \"a.pcap\"",
                "not an address or prefix",
            ),
            (
                "[[route]]\nvni = [1]\nto = \"a.pcap\"\nformat = \"cap\"",
                "use \"pcap\" or \"pcapng\"",
            ),
            (
                "[[route]]\nvni = [1]\nto = \"a.pcap\"\nfile_count = 3",
                "add -C (size) or -G (time)",
            ),
            (
                "[output]\nwrite = \"a.pcap\"\nfile_size = \"x\"",
                "not a file size",
            ),
            ("tap = \"a/b\"", "an interface name"),
            (
                "[output]\nwrite = \"a.pcap\"\nfile_size = -5",
                // A flattened key's position is its section's (serde buffers it).
                "line 1: file_size: expected a size such as 100 (MB), \"512k\" or \"2g\", found -5",
            ),
            (
                "[allow]\nvnis = [-1]",
                "line 2: expected a VNI from 0 to 16777215 such as 27, or a range such as \"100-199\", found -1",
            ),
            (
                "[[route]]\nvni = [16777216]\nto = \"drop\"",
                "line 2: expected a VNI from 0 to 16777215",
            ),
            (
                "queues = [-1]",
                "line 1: expected a list of queues or CPUs such as \"0,2-3\" or [0, 1] (or \"all\" for queues), found -1",
            ),
            ("cpus = true", "line 1: expected a list of queues or CPUs"),
            (
                "[[route]]\nvni = [1]\nto = \"tap:much-too-long-name\"",
                "an interface name",
            ),
        ] {
            let result = Settings::from_toml(text).and_then(|s| s.check());
            let e = result.expect_err(text).to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{text:?}: {e}");
        }
    }
}
