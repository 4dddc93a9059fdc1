//! Per-tenant routing: rules that send each inner frame to one output by
//! its VNI, its outer source address and optionally an inner filter.
//!
//! ```text
//! --route 'vni=27 -> inner-27.pcapng'
//! --route 'vni=100-199,src=10.1.0.0/16 -> tenant-b.pcap'
//! --route 'vni=300,filter=tcp port 80 -> tap:web300'
//! --route 'tunnel=geneve,gwlbe=0x0a1b2c3d4e5f6071 -> appliance-a.pcapng'
//! --route 'direction=external -> azure-gwlb-external.pcapng'
//! --route 'default -> drop'
//! ```
//!
//! The first matching route takes the frame; a frame no route matches is
//! counted as `no_route` (add `default -> …` to keep it).
//!
//! **One router analyzer owns every route's output** (single thread, no
//! locks), rather than one analyzer thread per route: the fan-out gives
//! every analyzer thread every frame, so N route threads would each test
//! and discard (N-1)/N of the traffic, N lanes per worker would carry it,
//! and a capture feeds at most 8 analyzers while a collector may serve
//! dozens of tenants. The router tests each frame once against a short
//! list of rules (a few comparisons per rule) and hands runs of frames
//! going to the same output on as one batch. The cost: the outputs of one
//! router share a thread, so a slow one (a tap write per frame, a slow
//! disk) delays the others; put an output that must not wait on its own
//! analyzer (`-w`, `--tap`) instead.
//!
//! From the library, a route can lead to any [`Analyzer`] of yours:
//!
//! ```
//! use vxdecap::analyzer::{CountAnalyzer, RouteMatch, Router};
//!
//! let router = Router::builder()
//!     .route("vni=27", RouteMatch::parse("vni=27").unwrap(), CountAnalyzer::new(Default::default()))
//!     .drop_route("default", RouteMatch::any())
//!     .build();
//! ```

use std::io;

use super::{
    open_frame_output, Analyzer, AnalyzerCounts, OutputError, OutputOptions, RouteCounts, TapWriter,
};
use crate::config::cloud::GwlbDirection;
use crate::datapath::batch::{Frames, InnerFrame};
use crate::error::ParseError;
use crate::filter::{FilterError, InnerFilter};
use crate::select::{parse_vni_range, Cidr};
use crate::sys::tap::TapError;
use vxdecap_wire::vxlan::MAX_VNI;
use vxdecap_wire::{GeneveLayer, Tunnel};

/// Why a route cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The rule text does not parse.
    #[error("route {rule:?}: {reason}")]
    Syntax {
        /// The rule.
        rule: String,
        /// What is wrong, and the fix.
        reason: ParseError,
    },
    /// Its inner filter does not compile.
    #[error("route {rule:?}: {source}")]
    Filter {
        /// The rule.
        rule: String,
        /// The compiler's complaint.
        source: FilterError,
    },
    /// Its file cannot be opened.
    #[error("route {rule:?}: {source}")]
    Output {
        /// The rule.
        rule: String,
        /// Why.
        source: OutputError,
    },
    /// Its tap device cannot be created.
    #[error("route {rule:?}: {source}")]
    Tap {
        /// The rule.
        rule: String,
        /// Why.
        source: TapError,
    },
}

/// Which frames a route takes: all of its parts must match; an empty part
/// matches anything.
#[derive(Clone, Debug, Default)]
pub struct RouteMatch {
    /// VNI ranges (inclusive); empty: any VNI.
    pub vnis: Vec<(u32, u32)>,
    /// Outer source prefixes; empty: any source.
    pub sources: Vec<Cidr>,
    /// Tunnel paths; empty: any. `geneve` takes every frame that came through GENEVE.
    pub tunnels: Vec<RouteTunnel>,
    /// AWS Gateway Load Balancer endpoint ids (GENEVE option 0x0108/1); empty: any frame.
    pub gwlb_endpoints: Vec<u64>,
    /// Azure Gateway Load Balancer directions (by outer port 10800/10801); empty: any.
    pub directions: Vec<GwlbDirection>,
    /// Inner filter; None: any frame.
    pub filter: Option<InnerFilter>,
}

/// A `tunnel=` value of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTunnel {
    /// Frames whose innermost tunnel is VXLAN (alone or inside GENEVE).
    Vxlan,
    /// Frames that came through GENEVE (alone or around VXLAN).
    Geneve,
    /// Frames of VXLAN inside GENEVE only.
    GeneveVxlan,
}

impl RouteTunnel {
    #[inline]
    fn matches(self, frame: &InnerFrame<'_>) -> bool {
        let tunnel = frame.meta.tunnel;
        match self {
            Self::Vxlan => tunnel == Tunnel::Vxlan,
            Self::Geneve => frame.geneve.is_some(),
            Self::GeneveVxlan => tunnel == Tunnel::Vxlan && frame.geneve.is_some(),
        }
    }
}

impl RouteMatch {
    /// Matches every frame (a default route).
    pub fn any() -> Self {
        Self::default()
    }

    /// Parses the part of a rule before `->`: `default`, or comma-separated
    /// `vni=LIST`, `src=LIST` and a last `filter=EXPRESSION`, where a list
    /// goes on over the following items without `=` (`vni=27,30,100-199`).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        if text == "default" || text == "*" {
            return Ok(Self::any());
        }
        if text.is_empty() {
            return Err("nothing before '->': write `default` or keys such as vni=27".into());
        }
        let mut m = Self::default();
        let mut filter = None;
        let mut key = "";
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(expression) = rest.trim_start().strip_prefix("filter=") {
                filter = Some(expression.trim().to_owned());
                break;
            }
            let (item, next) = rest.split_once(',').unwrap_or((rest, ""));
            rest = next;
            let item = item.trim();
            let value = match item.split_once('=') {
                Some((k, v)) => {
                    key = k.trim();
                    v.trim()
                }
                None if !key.is_empty() => item,
                None => {
                    return Err(
                        format!("{item:?} has no key: write vni=…, src=… or filter=…").into(),
                    )
                }
            };
            match key {
                "vni" => m.vnis.push(Self::parse_vni(value)?),
                "src" => m.sources.push(Self::parse_source(value)?),
                "tunnel" => m.tunnels.push(Self::parse_tunnel(value)?),
                "gwlbe" => m.gwlb_endpoints.push(Self::parse_endpoint(value)?),
                "direction" => m.directions.push(Self::parse_direction(value)?),
                other => {
                    return Err(format!(
                        "unknown key {other:?}: the keys are vni, src, tunnel, gwlbe, direction and filter (last)"
                    )
                    .into())
                }
            }
        }
        if let Some(expression) = filter {
            if expression.is_empty() {
                return Err("filter= needs an expression such as `tcp port 80`".into());
            }
            m.filter = Some(
                InnerFilter::compile(&expression).map_err(|e| ParseError::new(e.to_string()))?,
            );
        }
        Ok(m)
    }

    /// A `vni=` item: `27` or `100-199`, within 24 bits.
    pub fn parse_vni(text: &str) -> Result<(u32, u32), ParseError> {
        parse_vni_range(text).map_err(|_| {
            ParseError::new(format!(
                "vni {text:?} is not a VNI (0..={MAX_VNI}) or a range such as 100-199"
            ))
        })
    }

    /// A `tunnel=` item: `vxlan`, `geneve` or `geneve+vxlan`.
    pub fn parse_tunnel(text: &str) -> Result<RouteTunnel, ParseError> {
        match text {
            "vxlan" => Ok(RouteTunnel::Vxlan),
            "geneve" => Ok(RouteTunnel::Geneve),
            "geneve+vxlan" | "geneve_vxlan" => Ok(RouteTunnel::GeneveVxlan),
            other => Err(format!("tunnel {other:?}: give vxlan, geneve or geneve+vxlan").into()),
        }
    }

    /// A `direction=` item: `internal` or `external` (Azure Gateway Load Balancer).
    pub fn parse_direction(text: &str) -> Result<GwlbDirection, ParseError> {
        text.parse().map_err(ParseError::new)
    }

    /// A `gwlbe=` item: an AWS Gateway Load Balancer endpoint id as the GENEVE option
    /// carries it, in hex (`0x…`, as pcapng comments show it) or decimal.
    pub fn parse_endpoint(text: &str) -> Result<u64, ParseError> {
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse::<u64>(),
        };
        parsed.map_err(|_| {
            ParseError::new(format!(
                "gwlbe {text:?} is not an endpoint id such as 0x0a1b2c3d4e5f6071 (the GENEVE option's 8 bytes)"
            ))
        })
    }

    /// A `src=` item: an address or a prefix.
    pub fn parse_source(text: &str) -> Result<Cidr, ParseError> {
        text.parse::<Cidr>().map_err(|_| {
            ParseError::new(format!(
                "src {text:?} is not an address or prefix such as 10.1.0.0/16"
            ))
        })
    }

    /// True when the route takes every frame (no part selects).
    pub fn is_any(&self) -> bool {
        self.vnis.is_empty()
            && self.sources.is_empty()
            && self.tunnels.is_empty()
            && self.gwlb_endpoints.is_empty()
            && self.directions.is_empty()
            && self.filter.is_none()
    }

    /// True when `frame` belongs to this route.
    #[inline]
    pub fn matches(&self, frame: &InnerFrame<'_>) -> bool {
        let meta = frame.meta;
        (self.vnis.is_empty()
            || self
                .vnis
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&meta.vni)))
            && (self.sources.is_empty() || self.sources.iter().any(|c| c.contains(meta.outer_src)))
            && (self.tunnels.is_empty() || self.tunnels.iter().any(|t| t.matches(frame)))
            && (self.gwlb_endpoints.is_empty()
                || frame
                    .geneve
                    .and_then(GeneveLayer::gwlb_endpoint_id)
                    .is_some_and(|id| self.gwlb_endpoints.contains(&id)))
            && (self.directions.is_empty()
                || GwlbDirection::from_port(meta.outer_dst_port)
                    .is_some_and(|d| self.directions.contains(&d)))
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(frame.bytes, meta.orig_len))
    }
}

/// Where a route's frames go, as written in a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// A pcap or pcapng file (pattern), opened with [`open_frame_output`].
    File(String),
    /// A tap device (`tap:NAME`).
    Tap(String),
    /// Nowhere: counted per route and as `route_drop`.
    Drop,
}

impl RouteTarget {
    /// Parses the part after `->`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        match text {
            "" => Err("nothing after '->': write a file name, tap:NAME or drop".into()),
            "drop" => Ok(Self::Drop),
            "-" => Err("a route cannot write to stdout: give it a file name".into()),
            _ => match text.strip_prefix("tap:") {
                Some(name) => Ok(Self::Tap(name.trim().to_owned())),
                None => Ok(Self::File(text.to_owned())),
            },
        }
    }
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.write_str(path),
            Self::Tap(name) => write!(f, "tap:{name}"),
            Self::Drop => f.write_str("drop"),
        }
    }
}

/// One rule: which frames, where to, and how to write files.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// The rule as the user wrote it (for reports).
    pub rule: String,
    /// Which frames.
    pub matcher: RouteMatch,
    /// Where to.
    pub target: RouteTarget,
    /// Format and rotation of a file target.
    pub output: OutputOptions,
}

impl RouteSpec {
    /// Parses `SELECTOR -> TARGET` (see the module doc); files are written
    /// with `output`.
    pub fn parse(rule: &str, output: OutputOptions) -> Result<Self, RouteError> {
        let syntax = |reason: ParseError| RouteError::Syntax {
            rule: rule.to_owned(),
            reason,
        };
        let (selector, target) = rule.rsplit_once("->").ok_or_else(|| {
            syntax("a route is SELECTOR -> OUTPUT, e.g. 'vni=27 -> inner-27.pcapng' or 'default -> drop'".into())
        })?;
        let matcher = RouteMatch::parse(selector).map_err(syntax)?;
        let target = RouteTarget::parse(target).map_err(syntax)?;
        Ok(Self {
            rule: format!("{} -> {}", selector.trim(), target),
            matcher,
            target,
            output,
        })
    }
}

/// One route of a [`Router`].
struct Route {
    label: String,
    matcher: RouteMatch,
    /// Index into the router's outputs; None for a drop route.
    output: Option<usize>,
    frames: u64,
    bytes: u64,
}

/// Sends each frame to the output of the first route that matches it.
pub struct Router {
    routes: Vec<Route>,
    outputs: Vec<Box<dyn Analyzer>>,
    no_route: u64,
    /// Per frame of the batch being routed: its route (or `usize::MAX`).
    scratch: Vec<usize>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|r| &r.label).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds a [`Router`] from routes to analyzers of your own.
#[derive(Default)]
pub struct RouterBuilder {
    routes: Vec<Route>,
    outputs: Vec<Box<dyn Analyzer>>,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Adds a route to `output`, labelled `label` in reports.
    #[must_use]
    pub fn route(self, label: &str, matcher: RouteMatch, output: impl Analyzer + 'static) -> Self {
        self.boxed_route(label, matcher, Box::new(output))
    }

    /// Adds a route to an analyzer already boxed.
    #[must_use]
    pub fn boxed_route(
        mut self,
        label: &str,
        matcher: RouteMatch,
        output: Box<dyn Analyzer>,
    ) -> Self {
        self.outputs.push(output);
        let index = self.outputs.len() - 1;
        self.push(label, matcher, Some(index));
        self
    }

    /// Adds a route to the output of an earlier route `earlier` (0-based).
    #[must_use]
    pub fn shared_route(mut self, label: &str, matcher: RouteMatch, earlier: usize) -> Self {
        let output = self.routes.get(earlier).and_then(|r| r.output);
        self.push(label, matcher, output);
        self
    }

    /// Adds a route that drops what it matches.
    #[must_use]
    pub fn drop_route(mut self, label: &str, matcher: RouteMatch) -> Self {
        self.push(label, matcher, None);
        self
    }

    fn push(&mut self, label: &str, matcher: RouteMatch, output: Option<usize>) {
        self.routes.push(Route {
            label: label.to_owned(),
            matcher,
            output,
            frames: 0,
            bytes: 0,
        });
    }

    /// The router.
    pub fn build(self) -> Router {
        Router {
            routes: self.routes,
            outputs: self.outputs,
            no_route: 0,
            scratch: Vec::with_capacity(1024),
        }
    }
}

impl Router {
    /// Starts a router of routes to analyzers.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// Opens every route's output (files, taps); routes with the same target
    /// share one output.
    pub fn open(specs: Vec<RouteSpec>) -> Result<Self, RouteError> {
        let mut builder = Self::builder();
        let mut opened: Vec<(RouteTarget, usize)> = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let RouteSpec {
                rule,
                matcher,
                target,
                output,
            } = spec;
            if let Some(&(_, first)) = opened.iter().find(|(t, _)| *t == target) {
                builder = builder.shared_route(&rule, matcher, first);
                continue;
            }
            builder = match &target {
                RouteTarget::Drop => builder.drop_route(&rule, matcher),
                RouteTarget::File(path) => {
                    let writer =
                        open_frame_output(path, &output).map_err(|source| RouteError::Output {
                            rule: rule.clone(),
                            source,
                        })?;
                    builder.boxed_route(&rule, matcher, writer)
                }
                RouteTarget::Tap(name) => {
                    let tap = TapWriter::create(name).map_err(|source| RouteError::Tap {
                        rule: rule.clone(),
                        source,
                    })?;
                    builder.route(&rule, matcher, tap)
                }
            };
            opened.push((target, i));
        }
        Ok(builder.build())
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there is no route (every frame is `no_route`).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    #[inline]
    fn route_of(&self, frame: &InnerFrame<'_>) -> usize {
        self.routes
            .iter()
            .position(|r| r.matcher.matches(frame))
            .unwrap_or(usize::MAX)
    }

    /// The output of route `route`, if it has one.
    #[inline]
    fn output_of(&self, route: usize) -> Option<usize> {
        let r = self.routes.get(route)?;
        r.output
    }
}

impl Analyzer for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for frame in frames.iter() {
            let route = self.route_of(&frame);
            match self.routes.get_mut(route) {
                Some(r) => {
                    r.frames += 1;
                    r.bytes += frame.bytes.len() as u64;
                }
                None => self.no_route += 1,
            }
            scratch.push(route);
        }
        // Runs of frames for the same output go on as one batch.
        let mut result = Ok(());
        let mut start = 0;
        while start < scratch.len() {
            let output = self.output_of(scratch[start]);
            let mut end = start + 1;
            while end < scratch.len() && self.output_of(scratch[end]) == output {
                end += 1;
            }
            // Every run goes on even after an error: a failed output
            // counts what it was given, the others keep writing.
            if let Some(out) = output.and_then(|o| self.outputs.get_mut(o)) {
                if let Err(e) = out.on_batch(frames.slice(start..end)) {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
            start = end;
        }
        self.scratch = scratch;
        result
    }

    fn on_idle(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for out in &mut self.outputs {
            if let Err(e) = out.on_idle() {
                result = Err(e);
            }
        }
        result
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for out in &mut self.outputs {
            if let Err(e) = out.finish() {
                result = Err(e);
            }
        }
        result
    }

    fn counts(&self) -> AnalyzerCounts {
        let mut counts = AnalyzerCounts::default();
        let dropped: u64 = self
            .routes
            .iter()
            .filter(|r| r.output.is_none())
            .map(|r| r.frames)
            .sum();
        counts.add("route_drop", dropped);
        counts.add("no_route", self.no_route);
        for out in &self.outputs {
            counts.absorb(&out.counts());
        }
        counts.routes = self
            .routes
            .iter()
            .map(|r| RouteCounts {
                route: r.label.clone(),
                frames: r.frames,
                bytes: r.bytes,
                dropped: if r.output.is_none() { r.frames } else { 0 },
            })
            .collect();
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::batch::{FrameMeta, InnerBatch};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::{Arc, Mutex};

    #[test]
    fn rules_parse_and_bad_ones_name_the_fix() {
        let spec = RouteSpec::parse(
            "vni=27,30,100-199, src=10.1.0.0/16,10.2.0.0/16 -> tenant-b.pcap",
            OutputOptions::default(),
        )
        .expect("rule");
        assert_eq!(spec.matcher.vnis, [(27, 27), (30, 30), (100, 199)]);
        assert_eq!(spec.matcher.sources.len(), 2);
        assert_eq!(spec.target, RouteTarget::File("tenant-b.pcap".into()));
        let spec = RouteSpec::parse(
            "vni=5,filter=tcp port 80 or (udp and port 53) -> tap:web5",
            OutputOptions::default(),
        )
        .expect("rule with filter");
        assert!(spec.matcher.filter.is_some());
        assert_eq!(spec.target, RouteTarget::Tap("web5".into()));
        let spec = RouteSpec::parse("default -> drop", OutputOptions::default()).expect("default");
        assert!(spec.matcher.vnis.is_empty() && spec.matcher.sources.is_empty());
        assert_eq!(spec.target, RouteTarget::Drop);
        assert_eq!(spec.rule, "default -> drop");

        for (rule, needle) in [
            ("vni=27 inner.pcap", "SELECTOR -> OUTPUT"),
            ("vni=2x -> a.pcap", "not a VNI"),
            ("vni=16777216 -> a.pcap", "not a VNI"),
            ("vni=9-3 -> a.pcap", "not a VNI"),
            ("src=10.0.0.0/40 -> a.pcap", "not an address or prefix"),
            ("port=80 -> a.pcap", "unknown key \"port\""),
            ("27 -> a.pcap", "has no key"),
            ("vni=27 -> ", "nothing after '->'"),
            (" -> a.pcap", "nothing before '->'"),
            ("vni=27 -> -", "cannot write to stdout"),
            ("vni=1,filter=tcp prot 80 -> a.pcap", "man pcap-filter"),
        ] {
            let err = RouteSpec::parse(rule, OutputOptions::default())
                .expect_err(rule)
                .to_string();
            assert!(err.contains(needle), "{rule:?}: {err}");
        }
    }

    #[test]
    fn tunnel_gwlb_endpoint_and_direction_keys_select_frames() {
        use vxdecap_wire::geneve::AwsGwlb;
        use vxdecap_wire::GeneveLayer;
        let rule = |text: &str| RouteMatch::parse(text).expect(text);
        let vxlan = FrameMeta::default();
        let layer = |endpoint| {
            GeneveLayer::new(0, 0x0800, 6081).with_gwlb(AwsGwlb {
                endpoint_id: endpoint,
                ..AwsGwlb::default()
            })
        };
        let geneve = FrameMeta {
            tunnel: Tunnel::Geneve,
            ..FrameMeta::default()
        };
        let (alone, around) = (layer(None), layer(Some(0xabc)));
        let external = FrameMeta {
            outer_dst_port: 10801,
            ..FrameMeta::default()
        };
        let bytes = [0u8; 60];
        let frame = |meta, geneve| InnerFrame {
            bytes: &bytes,
            meta,
            geneve,
        };
        let frames = [
            frame(&vxlan, None),
            frame(&geneve, Some(&alone)),
            frame(&vxlan, Some(&around)),
            frame(&external, None),
        ];
        let picks = |text: &str| -> Vec<bool> {
            let m = rule(text);
            frames.iter().map(|f| m.matches(f)).collect()
        };
        assert_eq!(picks("tunnel=vxlan"), [true, false, true, true]);
        assert_eq!(picks("tunnel=geneve"), [false, true, true, false]);
        assert_eq!(picks("tunnel=geneve+vxlan"), [false, false, true, false]);
        assert_eq!(picks("gwlbe=0xabc"), [false, false, true, false]);
        assert_eq!(picks("gwlbe=2748"), [false, false, true, false]);
        assert_eq!(picks("gwlbe=1,0xabc"), [false, false, true, false]);
        assert_eq!(picks("direction=external"), [false, false, false, true]);
        assert_eq!(picks("direction=internal"), [false, false, false, false]);
        assert!(!rule("tunnel=geneve").is_any() && rule("default").is_any());
        for (text, needle) in [
            ("tunnel=gre", "vxlan, geneve or geneve+vxlan"),
            ("gwlbe=0xzz", "endpoint id"),
            ("direction=up", "internal or external"),
        ] {
            let err = RouteMatch::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    /// Records the VNIs it is given, and the batch sizes.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<(Vec<u32>, Vec<usize>)>>);

    impl Analyzer for Seen {
        fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
            let mut seen = self.0.lock().unwrap();
            seen.1.push(frames.len());
            seen.0.extend(frames.iter().map(|f| f.meta.vni));
            Ok(())
        }
    }

    #[test]
    fn the_first_match_wins_and_everything_is_counted() {
        let (a, b) = (Seen::default(), Seen::default());
        let rule = |text: &str| RouteMatch::parse(text).expect(text);
        let mut router = Router::builder()
            .route("vni=27", rule("vni=27"), a.clone())
            .route(
                "src=10.9.0.0/16",
                rule("vni=100-199,src=10.9.0.0/16"),
                b.clone(),
            )
            .drop_route("vni=100-199", rule("vni=100-199"))
            .shared_route("vni=5", rule("vni=5"), 0)
            .build();
        let mut batch = InnerBatch::owned(1 << 16, 64, 0, 0);
        let frame = [0u8; 60];
        let sources = [
            (27, [10, 9, 0, 1]),
            (27, [10, 8, 0, 1]),
            (150, [10, 9, 3, 3]),
            (150, [10, 8, 0, 1]),
            (5, [1, 1, 1, 1]),
            (6, [10, 9, 0, 1]),
            (27, [10, 9, 0, 1]),
        ];
        for (vni, src) in sources {
            let meta = FrameMeta {
                vni,
                outer_src: IpAddr::V4(Ipv4Addr::from(src)),
                orig_len: 60,
                ..FrameMeta::default()
            };
            batch.push_copy(&frame, meta);
        }
        router
            .on_batch(batch.frames(0..batch.len()))
            .expect("route");
        router.finish().expect("finish");
        let (a_vnis, a_batches) = a.0.lock().unwrap().clone();
        assert_eq!(
            a_vnis,
            [27, 27, 5, 27],
            "route 0 and the route sharing its output"
        );
        assert_eq!(
            a_batches,
            [2, 1, 1],
            "consecutive frames for one output in one batch"
        );
        assert_eq!(b.0.lock().unwrap().0, [150]);
        let counts = router.counts();
        assert_eq!(counts.get("route_drop"), 1);
        assert_eq!(counts.get("no_route"), 1);
        let per_route: Vec<(u64, u64, u64)> = counts
            .routes
            .iter()
            .map(|r| (r.frames, r.bytes, r.dropped))
            .collect();
        assert_eq!(per_route, [(3, 180, 0), (1, 60, 0), (1, 60, 1), (1, 60, 0)]);
    }
}
