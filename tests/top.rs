//! `vxdecap top` in a real terminal: tmux runs it against a live capture's
//! metrics endpoint in a network namespace while mirrored traffic on two
//! VNIs (and some the decapsulator rejects) flows; the screen read back
//! with `capture-pane` must show the queues, both tunnels with their
//! rates, the drop reason and the latency, and `q` must end it and give
//! the terminal back. Needs root (the capture).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

#[path = "common/collector.rs"]
mod collector;
mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collector::{Collector, MIRROR_SOURCE};
use common::*;

/// A tmux server of this test's own (`-L`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("vxdecap-top-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        output(Command::new("tmux").args(["-L", &self.socket]).args(args))
    }

    /// The visible screen of the session's pane.
    fn screen(&self) -> String {
        stdout(&self.cmd(&["capture-pane", "-p", "-t", "top"]))
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
        let dir = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let uid = nix::unistd::getuid();
        let _ = std::fs::remove_file(format!("{dir}/tmux-{uid}/{}", self.socket));
    }
}

/// Traffic sent from a thread until dropped; dropping stops and joins it,
/// so a failing test still lets go of the namespaces (the thread holds them).
struct Sender {
    sending: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.sending.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The cells of the table row whose first cell is `first`, in whichever
/// box (a line's `│`-separated parts) it is.
fn row<'a>(screen: &'a str, first: &str) -> Option<Vec<&'a str>> {
    screen.lines().find_map(|line| {
        line.split('│').find_map(|part| {
            let cells: Vec<&str> = part.split_whitespace().collect();
            (cells.first() == Some(&first)).then_some(cells)
        })
    })
}

/// A rate that says something is flowing: a number other than 0.
fn flowing(rate: &str) -> bool {
    rate != "-" && rate != "0"
}

#[test]
fn top_shows_a_live_capture_in_a_terminal_and_q_quits() {
    if !privileged("vxdecap top under tmux") {
        return;
    }
    let collector = Arc::new(Collector::new("tp", 2));
    let tmp = Arc::new(TempDir::new("tp"));
    let capture = RunningCapture::start(
        &collector.ns,
        &["-i", "eth1", "-q", "--metrics", "127.0.0.1:9422"],
    );

    // Mirrored traffic for as long as the test reads the screen: VNI 27
    // three times as busy as VNI 100, and frames with the VXLAN I flag
    // clear, which the decapsulator rejects.
    let sending = Arc::new(AtomicBool::new(true));
    let thread = {
        let (collector, tmp, sending) = (Arc::clone(&collector), tmp, Arc::clone(&sending));
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            for n in 0..10u16 {
                bad.push(
                    vxdecap::wire::build::VxlanFrameBuilder::new()
                        .outer_src_ip(MIRROR_SOURCE)
                        .outer_dst_ip(std::net::Ipv4Addr::new(10, 79, 0, 2))
                        .udp_src_port(50_000 + n)
                        .vxlan_flags(0)
                        .vni(27)
                        .inner(&inner::udp(n))
                        .build()
                        .expect("a frame with the I flag clear"),
                );
            }
            let mut rounds = 0;
            while sending.load(Ordering::Relaxed) && rounds < 200 {
                collector.send(27, 300, &tmp);
                collector.send(100, 100, &tmp);
                send_raw(&collector.sender, "und0", &bad, &tmp);
                rounds += 1;
            }
        })
    };
    let sender = Sender {
        sending,
        thread: Some(thread),
    };

    let tmux = Tmux::new();
    let top = format!(
        "ip netns exec {} {} top 127.0.0.1:9422 --interval 0.5",
        collector.ns.name(),
        vxdecap_path()
    );
    let o = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &top,
    ]);
    assert!(o.status.success(), "tmux: {}", stderr(&o));

    // The screen, once both tunnels, the queues and the rejects show rates.
    let deadline = Instant::now() + Duration::from_secs(30);
    let screen = loop {
        let screen = tmux.screen();
        let ready = ["27", "100", "vxlan_i_flag_clear"]
            .iter()
            .all(|name| row(&screen, name).is_some_and(|c| c.len() >= 3 && flowing(c[1])))
            && row(&screen, "0").is_some_and(|c| c.len() >= 5 && flowing(c[4]))
            && row(&screen, "count").is_some_and(|c| c.len() >= 5 && c[1] != "-")
            && row(&screen, "redirected").is_some_and(|c| c.len() >= 3 && flowing(c[1]));
        if ready {
            break screen;
        }
        assert!(
            Instant::now() < deadline && tmux.alive(),
            "the screen never showed the traffic:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("vxdecap top, as tmux capture-pane shows it:\n{screen}");
    for expected in [
        "vxdecap top — eth1 — http://127.0.0.1:9422/metrics",
        "Rx queues",
        "Tunnels (VNI)",
        "Drops by reason",
        "Latency, receive to analyzer",
        "XDP program",
        "redirected",
        "scraped",
    ] {
        assert!(screen.contains(expected), "{expected} missing:\n{screen}");
    }
    // Both rx queues, each with its CPU, bind mode and policy.
    for q in ["0", "1"] {
        let cells = row(&screen, q).unwrap_or_else(|| panic!("no queue {q}:\n{screen}"));
        assert_eq!(cells[2], "copy", "{screen}");
    }
    // VNI 27 is the busier tunnel, so it comes first.
    let order: Vec<&str> = screen
        .lines()
        .filter_map(|l| l.split('│').nth(1)?.split_whitespace().next())
        .filter(|c| *c == "27" || *c == "100")
        .collect();
    assert_eq!(order.first(), Some(&"27"), "{screen}");
    let latency = row(&screen, "count").expect("the count analyzer's latency row");
    // "count  209 µs  2.9 ms …": p50 is a number and a unit.
    assert!(
        latency[1].parse::<f64>().is_ok() && ["µs", "ms"].contains(&latency[2]),
        "{latency:?}"
    );

    // q quits and gives the terminal back.
    let o = tmux.cmd(&["send-keys", "-t", "top", "q"]);
    assert!(o.status.success());
    let quit = Instant::now();
    while tmux.alive() && quit.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tmux.alive(), "vxdecap top still runs after q");

    drop(sender);
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        reason_count(&summary, "vxlan_i_flag_clear") > 0,
        "{summary}"
    );
}
