//! The TOML configuration file (`vxdecap capture --config FILE`,
//! `vxdecap check-config FILE`) and the outputs a run builds from it: the
//! file is read into [`Settings`], typed values (the command line's flags
//! go on top), which check, print and build what they describe.
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

mod checks;
pub mod cloud;
mod file;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use vxdecap_wire::PortSet;

use crate::analyzer::{
    open_frame_output, Analyzer, CountAnalyzer, Filtered, OutputOptions, PrintAnalyzer, RouteSpec,
    RouteTarget, Router, TapWriter,
};
use crate::error::{error_chain, ParseError};
use crate::filter::InnerFilter;
use crate::runtime::config::{CaptureConfig, CaptureMode, QueueSelection};
use crate::runtime::metrics_server::Endpoint;
use crate::select::Written;
use crate::steer::allow::Allowlist;
use checks::{check_file, check_tap_name, check_writable, describe_file};
pub use file::parse_file_size;
use file::ConfigFile;

/// A configuration that cannot be used; the message names the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<ParseError> for ConfigError {
    fn from(e: ParseError) -> Self {
        Self(e.to_string())
    }
}

/// `VXLAN 4789, GENEVE 6081, depth 2`, with the preset first when there is one.
pub fn describe_ports(ports: &PortSet, cloud: Option<cloud::Cloud>) -> String {
    let join = |list: &[u16]| {
        list.iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let geneve = if ports.geneve().is_empty() {
        "off".to_owned()
    } else {
        join(ports.geneve())
    };
    format!(
        "{}VXLAN {}, GENEVE {geneve}, tunnel depth {}",
        cloud.map_or(String::new(), |c| format!("cloud {c}: ")),
        join(ports.as_slice()),
        ports.max_depth()
    )
}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The effective setup of a run: the file's values with the command line's on top.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Capture interface.
    pub interface: Option<String>,
    /// VXLAN UDP ports (empty: the preset's, else 4789).
    pub ports: Vec<u16>,
    /// GENEVE UDP ports (`None`: the preset's, else 6081; empty: GENEVE off).
    pub geneve_ports: Option<Vec<u16>>,
    /// `--cloud`: the mirror format's preset.
    pub cloud: Option<cloud::Cloud>,
    /// Most tunnels peeled from one frame (`None`: 2).
    pub max_depth: Option<u8>,
    /// Rx queues (`None`: all).
    pub queues: Option<Written<QueueSelection>>,
    /// Worker CPUs, in queue order.
    pub cpus: Option<Written<Vec<usize>>>,
    /// XDP attach and AF_XDP bind modes.
    pub mode: Option<CaptureMode>,
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
    /// Per-tenant routes, in order; a route's file without rotation keys of
    /// its own takes the run's (see [`Settings::effective_route`]).
    pub routes: Vec<RouteSpec>,
    /// Sources and VNIs allowed through (enforced in XDP).
    pub allow: Allowlist,
    /// Allowlist file, read again on SIGHUP.
    pub allow_file: Option<String>,
}

impl Settings {
    /// Reads a configuration file.
    pub fn from_file(path: &str) -> Result<Self, ConfigError> {
        let text = crate::files::read_text(std::path::Path::new(path), crate::files::CONFIG_LIMIT)
            .map_err(|e| err(format!("cannot read the config file {path}: {e}")))?;
        Self::from_toml(&text).map_err(|e| err(format!("{path}: {}", e.0)))
    }

    /// Parses configuration text into typed settings.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
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
                " (keys: interface, ports, geneve_ports, cloud, max_tunnel_depth, queues, cpus, mode, metrics, lossless, filter, tap, [output], [allow], [[route]]; see examples/vxdecap.toml)"
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
        let mode = file
            .mode
            .map(|m| {
                m.parse::<CaptureMode>()
                    .map_err(|e| err(format!("mode = {e}")))
            })
            .transpose()?;
        let (write, output) = match file.output {
            Some(section) => {
                let options = section.options()?;
                (section.write, options)
            }
            None => (None, OutputOptions::default()),
        };
        let routes = file
            .route
            .iter()
            .enumerate()
            .map(|(i, r)| r.spec(i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let (allow, allow_file) = match file.allow {
            Some(section) => section.allowlist()?,
            None => (Allowlist::default(), None),
        };
        Ok(Self {
            allow,
            allow_file,
            interface: file.interface,
            ports: file.ports.unwrap_or_default(),
            geneve_ports: file.geneve_ports,
            cloud: file
                .cloud
                .map(|c| c.parse().map_err(|e: String| err(format!("cloud = {e}"))))
                .transpose()?,
            max_depth: file.max_depth,
            queues: file.queues.map(|q| q.queues("--queues")).transpose()?,
            cpus: file.cpus.map(|c| c.cpus("--cpus")).transpose()?,
            mode,
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
    /// the filters, the routes, rotation and file name patterns, tap names.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(filter) = &self.filter {
            InnerFilter::compile(filter).map_err(|e| err(e.to_string()))?;
        }
        if let Some(name) = &self.tap {
            check_tap_name(name)?;
        }
        if let Some(path) = &self.write {
            check_file(path, &self.output).map_err(|e| err(format!("-w {path}: {e}")))?;
        }
        for route in &self.routes {
            let spec = self.effective_route(route);
            match &spec.target {
                RouteTarget::File(path) => check_file(path, &spec.output)
                    .map_err(|e| err(format!("route {:?}: {e}", route.rule)))?,
                RouteTarget::Tap(name) => check_tap_name(name)?,
                RouteTarget::Drop => {}
            }
        }
        Ok(())
    }

    /// The live capture this setup describes: interface, ports, queues,
    /// CPUs, mode, metrics and allowlists. The rest of a [`CaptureConfig`]
    /// keeps its defaults.
    pub fn capture_config(&self) -> Result<CaptureConfig, ConfigError> {
        let interface = self.interface.as_deref().ok_or_else(|| {
            err("no interface: give -i IFACE or interface = \"…\" in the --config file")
        })?;
        let mut config = CaptureConfig::new(interface);
        config.ports = self.port_set()?;
        config.cloud = self.cloud;
        config.queues = self
            .queues
            .as_ref()
            .map(|q| q.value.clone())
            .unwrap_or_default();
        config.cpus = self.cpus.as_ref().map(|c| c.value.clone());
        config.mode = self.mode.unwrap_or_default();
        config.lossless = self.lossless;
        config.allow = self.allow.clone();
        config.allow_file = self.allow_file.as_ref().map(std::path::PathBuf::from);
        config.metrics.clone_from(&self.metrics);
        Ok(config)
    }

    /// Everything `capture` checks before it starts that needs neither root
    /// nor creating anything, so that `check-config` and `capture` accept
    /// and refuse the same files: [`Settings::check`] and, with an
    /// interface, [`crate::runtime::preflight::check_setup`] (the
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
        if !host {
            return Ok(warnings);
        }
        self.check_outputs_writable()?;
        if self.interface.is_some() {
            let config = self.capture_config()?;
            crate::runtime::preflight::check_setup(&config).map_err(|e| err(error_chain(&e)))?;
            warnings.extend(crate::runtime::preflight::warnings(&config));
        } else if let Some(cpus) = &self.cpus {
            crate::runtime::cpus::check_cpus(&cpus.value).map_err(|e| err(error_chain(&e)))?;
        }
        Ok(warnings)
    }

    /// Checks that `-w` and the route files can be written where they are
    /// named (without creating them).
    pub fn check_outputs_writable(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.write {
            check_writable(path).map_err(|e| err(format!("cannot write {path}: {e}")))?;
        }
        for route in &self.routes {
            if let RouteTarget::File(path) = &route.target {
                check_writable(path).map_err(|e| {
                    err(format!("route {:?}: cannot write {path}: {e}", route.rule))
                })?;
            }
        }
        Ok(())
    }

    /// Settings that have no effect: routes after one that takes every
    /// frame.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut catch_all: Option<(usize, &str)> = None;
        for (i, route) in self.routes.iter().enumerate() {
            if let Some((n, earlier)) = catch_all {
                warnings.push(format!(
                    "route {} ({}) comes after route {n} ({earlier}), which takes every frame: it never matches; move it up or remove it",
                    i + 1,
                    route.rule
                ));
                continue;
            }
            let m = &route.matcher;
            if m.is_any() {
                catch_all = Some((i + 1, &route.rule));
            }
        }
        warnings
    }

    /// `route` with this run's defaults filled in: a file without rotation
    /// keys of its own is rotated as `-w` is (`-C`/`-G`/`-W`, `[output]`).
    pub fn effective_route(&self, route: &RouteSpec) -> RouteSpec {
        let mut spec = route.clone();
        let rotation = &spec.output.rotation;
        if !rotation.is_rotating() && rotation.files.is_none() {
            spec.output.rotation = self.output.rotation;
        }
        spec
    }

    /// The files this run may write, with their format and rotation: `-w`
    /// (`-` for stdout) and every route to a file.
    pub fn file_outputs(&self) -> Vec<(String, OutputOptions)> {
        let mut outputs: Vec<(String, OutputOptions)> = self
            .write
            .iter()
            .map(|path| (path.clone(), self.output))
            .collect();
        for route in &self.routes {
            let spec = self.effective_route(route);
            if let RouteTarget::File(path) = spec.target {
                outputs.push((path, spec.output));
            }
        }
        outputs
    }

    /// True when an output is a tap device (`--tap` or a route's `tap:`).
    pub fn uses_tap(&self) -> bool {
        self.tap.is_some()
            || self
                .routes
                .iter()
                .any(|r| matches!(r.target, RouteTarget::Tap(_)))
    }

    /// The tunnel ports and depth limit: `--port`/`--geneve-port` (or the file's), else the
    /// `--cloud` preset's, else 4789 and 6081.
    pub fn port_set(&self) -> Result<PortSet, ConfigError> {
        let preset = self.cloud;
        let vxlan: &[u16] = match (self.ports.as_slice(), preset) {
            ([], Some(cloud)) => cloud.vxlan_ports(),
            ([], None) => &[vxdecap_wire::VXLAN_PORT],
            (ports, _) => ports,
        };
        let mut set = PortSet::new(vxlan).map_err(|e| err(format!("--port: {e}")))?;
        let geneve = match (&self.geneve_ports, preset) {
            (Some(ports), _) => Some(ports.as_slice()),
            (None, Some(cloud)) => Some(cloud.geneve_ports()),
            (None, None) => None,
        };
        if let Some(geneve) = geneve {
            set = set
                .with_geneve(geneve)
                .map_err(|e| err(format!("--geneve-port: {e}")))?;
        }
        if let Some(depth) = self.max_depth {
            if !(1..=vxdecap_wire::MAX_DEPTH).contains(&depth) {
                return Err(err(format!(
                    "--max-tunnel-depth {depth}: give 1 to {}",
                    vxdecap_wire::MAX_DEPTH
                )));
            }
            set = set.with_max_depth(depth);
        }
        Ok(set)
    }

    /// The tunnel setup in one line: preset, VXLAN and GENEVE ports, depth limit.
    pub fn describe_tunnels(&self) -> Result<String, ConfigError> {
        Ok(describe_ports(&self.port_set()?, self.cloud))
    }

    /// The effective setup, one item a line, as `check-config` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
        let _ = writeln!(out, "interface: {}", or(&self.interface, "(none: give -i)"));
        let ports = match self.port_set() {
            Ok(set) => describe_ports(&set, None),
            Err(e) => e.to_string(),
        };
        let _ = writeln!(out, "ports: {ports}");
        if let Some(cloud) = self.cloud {
            let _ = writeln!(out, "cloud: {cloud} ({})", cloud.describe());
        }
        let _ = writeln!(
            out,
            "queues: {}",
            self.queues
                .as_ref()
                .map_or_else(|| "all".to_owned(), ToString::to_string)
        );
        let _ = writeln!(
            out,
            "cpus: {}",
            self.cpus.as_ref().map_or_else(
                || "one per queue, skipping core 0".to_owned(),
                ToString::to_string
            )
        );
        let _ = writeln!(out, "mode: {}", self.mode.unwrap_or_default());
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
            self.metrics.as_ref().map_or_else(
                || "off".to_owned(),
                |m| {
                    let addrs: Vec<String> = m.addrs.iter().map(SocketAddr::to_string).collect();
                    if addrs == [m.text.clone()] {
                        m.text.clone()
                    } else {
                        format!("{} ({})", m.text, addrs.join(", "))
                    }
                }
            )
        );
        let _ = writeln!(out, "inner filter: {}", or(&self.filter, "none"));
        if let Some(w) = &self.write {
            let _ = writeln!(out, "output: {w} ({})", describe_file(w, &self.output));
        }
        if let Some(t) = &self.tap {
            let _ = writeln!(out, "tap: {t}");
        }
        for (i, route) in self.routes.iter().enumerate() {
            let spec = self.effective_route(route);
            let detail = match &spec.target {
                RouteTarget::File(path) => format!(" ({})", describe_file(path, &spec.output)),
                _ => String::new(),
            };
            let _ = writeln!(out, "route {}: {}{detail}", i + 1, route.rule);
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
                .map(|r| self.effective_route(r))
                .collect();
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
                .map(|a| -> Box<dyn Analyzer> { Box::new(Filtered::new(filter.clone(), a)) })
                .collect();
        }
        Ok((analyzers, names.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analyzer::OutputFormat;

    #[test]
    fn route_tables_take_the_geneve_selectors() {
        let settings = Settings::from_toml(
            "cloud = \"aws-gwlb\"\n\
             [[route]]\ntunnel = [\"geneve+vxlan\"]\ngwlbe = [\"0x0a1b2c3d4e5f6071\", \"7\"]\nto = \"drop\"\n\
             [[route]]\ndirection = [\"external\"]\nto = \"drop\"\n",
        )
        .expect("parses");
        let m = &settings.routes[0].matcher;
        assert_eq!(m.gwlb_endpoints, [0x0a1b_2c3d_4e5f_6071, 7]);
        assert_eq!(m.tunnels.len(), 1);
        assert!(!m.is_any());
        assert_eq!(
            settings.routes[0].rule,
            "tunnel=geneve+vxlan,gwlbe=0x0a1b2c3d4e5f6071,7 -> drop"
        );
        assert_eq!(settings.routes[1].matcher.directions.len(), 1);
        assert!(
            settings.warnings().is_empty(),
            "neither route takes every frame"
        );
        let bad = Settings::from_toml("[[route]]\ntunnel = [\"gre\"]\nto = \"drop\"\n")
            .expect_err("unknown tunnel");
        assert!(
            bad.to_string().contains("vxlan, geneve or geneve+vxlan"),
            "{bad}"
        );
    }

    #[test]
    fn tunnel_ports_come_from_flags_then_the_preset_then_the_defaults() {
        let set = |toml: &str| Settings::from_toml(toml).expect("parses").port_set();
        let default = set("").expect("ports");
        assert_eq!(
            (default.as_slice(), default.geneve()),
            (&[4789][..], &[6081][..])
        );
        assert_eq!(default.max_depth(), 2);
        let azure = set("cloud = \"azure-gwlb\"").expect("ports");
        assert_eq!(azure.as_slice(), &[10800, 10801]);
        assert!(azure.geneve().is_empty());
        let aws = set("cloud = \"aws-gwlb\"\nports = [4789, 8472]").expect("ports");
        assert_eq!(
            (aws.as_slice(), aws.geneve()),
            (&[4789, 8472][..], &[6081][..])
        );
        let own = set("cloud = \"gcp\"\ngeneve_ports = [7000, 7001]\nmax_tunnel_depth = 3")
            .expect("ports");
        assert_eq!((own.geneve(), own.max_depth()), (&[7000, 7001][..], 3));
        let off = set("geneve_ports = []").expect("ports");
        assert!(off.geneve().is_empty());
        let both = set("ports = [6081]\ngeneve_ports = [6081]").expect_err("clash");
        assert!(both.to_string().contains("both VXLAN and GENEVE"), "{both}");
        let deep = set("max_tunnel_depth = 9").expect_err("too deep");
        assert!(deep.to_string().contains("1 to 4"), "{deep}");
        let unknown = Settings::from_toml("cloud = \"azure\"").expect_err("unknown");
        assert!(unknown.to_string().contains("azure-vtap"), "{unknown}");
        let shown = Settings::from_toml("cloud = \"aws-gwlb\"")
            .expect("ok")
            .render();
        assert!(
            shown.contains("ports: VXLAN 4789, GENEVE 6081, tunnel depth 2"),
            "{shown}"
        );
        assert!(
            shown.contains("cloud: aws-gwlb (AWS Gateway Load Balancer"),
            "{shown}"
        );
    }

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
        assert_eq!(
            s.queues.as_ref().map(ToString::to_string).as_deref(),
            Some("0,1")
        );
        assert_eq!(
            s.cpus.as_ref().map(ToString::to_string).as_deref(),
            Some("2-3")
        );
        assert_eq!(s.mode.map(|m| m.to_string()).as_deref(), Some("copy"));
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
