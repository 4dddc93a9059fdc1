//! `vxdecap top`: a live terminal view of a running capture, read from its
//! metrics endpoint (`vxdecap capture --metrics ADDR:PORT`). Once per
//! interval it scrapes `/metrics`, and shows per rx queue the frames and
//! bits per second received, decapsulated and lost; inner frames per
//! second per tunnel (VNI); drops by reason; the receive-to-analyzer
//! latency per analyzer; and the XDP program's decisions. `q`, Esc or
//! Ctrl-C quits.
//!
//! It reads only the endpoint, so it runs anywhere the endpoint can be
//! reached, as any user, and costs the capture one scrape per interval.
//! The crate stands apart from `vxdecap` so that embedders of the library
//! need not build a terminal UI (`vxdecap`'s `top` feature).

pub mod exposition;
pub mod model;
pub mod ui;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

/// `vxdecap top`'s arguments.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The capture's metrics endpoint: `HOST:PORT` (as given to --metrics) or
    /// a URL such as http://10.0.2.4:9419/metrics.
    #[arg(value_name = "ENDPOINT", default_value = "127.0.0.1:9419")]
    pub endpoint: String,
    /// Seconds between scrapes (rates are taken over this interval).
    #[arg(short = 'n', long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
}

/// The URL to scrape for `endpoint`: `http://` and `/metrics` added when missing.
pub fn metrics_url(endpoint: &str) -> String {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    if after_scheme.contains('/') {
        url
    } else {
        format!("{url}/metrics")
    }
}

/// Scrapes `url` once and parses it.
pub fn scrape(agent: &ureq::Agent, url: &str) -> anyhow::Result<Vec<exposition::Sample>> {
    let mut response = agent.get(url).call()?;
    let text = response
        .body_mut()
        .read_to_string()
        .context("cannot read the response")?;
    Ok(exposition::parse(&text)?)
}

/// Runs the view until the user quits.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        bail!("--interval {}: give at least 0.1 seconds", args.interval);
    }
    if !std::io::stdout().is_terminal() {
        bail!("vxdecap top draws on a terminal, and stdout is not one: run it in a terminal (or scrape the endpoint with curl)");
    }
    let url = metrics_url(&args.endpoint);
    let interval = Duration::from_secs_f64(args.interval);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(interval.max(Duration::from_secs(1))))
        .build()
        .into();
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let result = show(&mut terminal, &agent, &url, args.interval);
    ratatui::restore();
    result
}

fn show(
    terminal: &mut ratatui::DefaultTerminal,
    agent: &ureq::Agent,
    url: &str,
    interval_secs: f64,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(interval_secs);
    let mut previous: Option<(Vec<exposition::Sample>, Instant)> = None;
    let mut view = model::View::default();
    loop {
        let started = Instant::now();
        let status = match scrape(agent, url) {
            Ok(samples) => {
                view = model::view(
                    &samples,
                    previous
                        .as_ref()
                        .map(|(s, at)| (s.as_slice(), started.duration_since(*at))),
                );
                previous = Some((samples, started));
                Ok(clock())
            }
            Err(e) => Err(format!("{url}: {e:#}")),
        };
        let header = ui::Header {
            url,
            interval: interval_secs,
            status,
        };
        terminal.draw(|f| ui::draw(f, &view, &header))?;
        // Keys (and resizes) until the next scrape.
        let next = started + interval;
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if !event::poll(left)? {
                break;
            }
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                        && key.code == KeyCode::Char('c');
                    if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
                Event::Resize(..) => {
                    terminal.draw(|f| ui::draw(f, &view, &header))?;
                }
                _ => {}
            }
        }
    }
}

/// The time of day, UTC, as HH:MM:SS.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_metrics_urls() {
        assert_eq!(
            metrics_url("127.0.0.1:9419"),
            "http://127.0.0.1:9419/metrics"
        );
        assert_eq!(
            metrics_url("localhost:9419"),
            "http://localhost:9419/metrics"
        );
        assert_eq!(
            metrics_url("http://10.0.2.4:9419"),
            "http://10.0.2.4:9419/metrics"
        );
        assert_eq!(
            metrics_url("http://10.0.2.4:9419/metrics"),
            "http://10.0.2.4:9419/metrics"
        );
        assert_eq!(metrics_url("[::1]:9419"), "http://[::1]:9419/metrics");
    }
}
