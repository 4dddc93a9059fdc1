//! Drawing a [`View`] with ratatui: per-queue rates on top, tunnels (VNIs)
//! and drops by reason side by side, latency and the XDP program's
//! decisions below, a status line at the bottom.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;

use crate::model::{Rate, View};

/// What the screen says besides the view.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// The endpoint scraped.
    pub url: &'a str,
    /// Seconds between scrapes.
    pub interval: f64,
    /// The last scrape's outcome: `Ok(when)` or the error.
    pub status: Result<String, String>,
}

/// A count with at most 4 significant characters: `987`, `12.3k`, `4.56M`.
pub fn count(n: f64) -> String {
    let n = n.max(0.0);
    for (scale, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if n >= scale {
            let v = n / scale;
            return if v >= 100.0 {
                format!("{v:.0}{suffix}")
            } else if v >= 10.0 {
                format!("{v:.1}{suffix}")
            } else {
                format!("{v:.2}{suffix}")
            };
        }
    }
    format!("{n:.0}")
}

/// A rate, or `-` before the second scrape.
fn per_sec(rate: &Rate) -> String {
    rate.per_sec.map_or_else(|| "-".to_owned(), count)
}

/// Bits per second from a byte rate: `12.3M`.
fn bits(rate: &Rate) -> String {
    rate.per_sec
        .map_or_else(|| "-".to_owned(), |b| count(b * 8.0))
}

/// A latency in seconds as µs or ms.
pub fn latency(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".to_owned(),
        Some(s) if s < 1e-3 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, view: &View, header: &Header<'_>) {
    let queue_rows = view.queues.len() as u16 + 3;
    let bottom_rows = view.latency.len().max(view.xdp.len()).max(1) as u16 + 3;
    let [title, queues, middle, bottom, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(queue_rows),
        Constraint::Min(6),
        Constraint::Length(bottom_rows),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(Line::from(format!(
            " vxdecap top — {} — {} — every {} s — q quits",
            view.interface, header.url, header.interval
        )))
        .style(bold()),
        title,
    );
    draw_queues(frame, view, queues);
    let [tunnels, drops] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle);
    draw_rates(frame, "Tunnels (VNI)", "vni", &view.vnis, tunnels);
    draw_rates(frame, "Drops by reason", "reason", &view.drops, drops);
    let [lat, xdp] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    draw_latency(frame, view, lat);
    draw_rates(frame, "XDP program", "decision", &view.xdp, xdp);
    let text = match &header.status {
        Ok(when) => format!(" scraped {when}; interface restarts: {}", view.restarts),
        Err(e) => format!(" cannot scrape: {e} (retrying)"),
    };
    frame.render_widget(Paragraph::new(text), status);
}

fn draw_queues(frame: &mut Frame<'_>, view: &View, area: Rect) {
    let header = Row::new([
        "queue",
        "cpu",
        "bind",
        "policy",
        "rx/s",
        "rx bit/s",
        "decap/s",
        "lost/s",
        "rx total",
        "lost total",
    ])
    .style(bold());
    let rows = view.queues.iter().map(|q| {
        Row::new([
            q.queue.clone(),
            q.cpu.clone(),
            q.bind_mode.clone(),
            q.rx_policy.clone(),
            per_sec(&q.received),
            bits(&q.bytes),
            per_sec(&q.decapsulated),
            per_sec(&q.lost),
            count(q.received.total),
            count(q.lost.total),
        ])
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(" Rx queues ")),
        area,
    );
}

fn draw_rates(frame: &mut Frame<'_>, title: &str, what: &str, rates: &[Rate], area: Rect) {
    let header = Row::new([what, "/s", "total"]).style(bold());
    let rows = rates
        .iter()
        .map(|r| Row::new([r.name.clone(), per_sec(r), count(r.total)]));
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(format!(" {title} "))),
        area,
    );
}

fn draw_latency(frame: &mut Frame<'_>, view: &View, area: Rect) {
    let header = Row::new(["analyzer", "p50", "p99", "p99.9", "max"]).style(bold());
    let rows = view.latency.iter().map(|l| {
        let mut cells = vec![l.analyzer.clone()];
        cells.extend(l.quantiles.iter().map(|&q| latency(q)));
        Row::new(cells)
    });
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(" Latency, receive to analyzer ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::parse;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    #[test]
    fn counts_and_latencies_read_at_a_glance() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(987.4), "987");
        assert_eq!(count(12_345.0), "12.3k");
        assert_eq!(count(4_560_000.0), "4.56M");
        assert_eq!(count(150e9), "150G");
        assert_eq!(latency(Some(0.000185)), "185 µs");
        assert_eq!(latency(Some(0.0042)), "4.2 ms");
        assert_eq!(latency(None), "-");
    }

    #[test]
    fn the_screen_shows_queues_tunnels_drops_and_latency() {
        let text = r#"vxdecap_queue_info{interface="eth1",queue="0",cpu="1",bind_mode="copy",rx_policy="sleep"} 1
vxdecap_received_frames_total{queue="0"} 3000
vxdecap_vni_frames_total{vni="27"} 2500
vxdecap_vni_frames_total{vni="other"} 0
vxdecap_dropped_frames_total{queue="0",cause="xsk_rx_ring_full"} 12
vxdecap_receive_latency_seconds{analyzer="count",quantile="0.5"} 0.000185
vxdecap_xdp_frames_total{interface="eth1",decision="redirected"} 3012
"#;
        let before = parse(&text.replace("3000", "1000").replace("2500", "500")).unwrap();
        let now = parse(text).unwrap();
        let view = crate::model::view(&now, Some((&before, std::time::Duration::from_secs(1))));
        let mut terminal = Terminal::new(TestBackend::new(110, 30)).unwrap();
        terminal
            .draw(|f| {
                draw(
                    f,
                    &view,
                    &Header {
                        url: "http://127.0.0.1:9419/metrics",
                        interval: 1.0,
                        status: Ok("12:00:00".into()),
                    },
                )
            })
            .unwrap();
        let mut screen = String::new();
        for row in terminal.backend().buffer().content().chunks(110) {
            screen.extend(row.iter().map(ratatui::buffer::Cell::symbol));
            screen.push('\n');
        }
        for expected in [
            "vxdecap top — eth1",
            "Rx queues",
            "2.00k", // rx/s of queue 0
            "Tunnels (VNI)",
            "27",
            "Drops by reason",
            "xsk_rx_ring_full",
            "185 µs",
            "redirected",
            "scraped 12:00:00",
        ] {
            assert!(screen.contains(expected), "{expected} missing:\n{screen}");
        }
    }
}
