//! The metrics endpoint of a live capture under hostile clients: a
//! slowloris client and hundreds of idle connections must neither delay
//! scrapes nor the capture's end; requests with a query string, bare LF line
//! ends or a host name address are answered. Needs root (a capture in a
//! network namespace). The values themselves are checked with the Prometheus
//! project's parser in `tests/live.rs`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use vxdecap::lab::netns::{unique_name, veth_pair, ChildGuard, NetNs};

const PORT: u16 = 9419;

/// A namespace with `eth1` (a veth end, up) to capture on; its peer in a
/// second namespace.
struct Collector {
    ns: NetNs,
    peer: NetNs,
}

impl Collector {
    fn new(tag: &str) -> Self {
        let base = unique_name(tag);
        let ns = NetNs::create(&format!("{base}-rx")).expect("collector netns");
        let peer = NetNs::create(&format!("{base}-tx")).expect("peer netns");
        veth_pair(&peer, "und0", &ns, "eth1").expect("veth pair");
        peer.configure("und0", "10.78.0.1/24").expect("peer addr");
        ns.configure("eth1", "10.78.0.2/24")
            .expect("collector addr");
        Self { ns, peer }
    }

    /// Creates `eth1` again (after it was deleted), with a new ifindex.
    fn replug(&self) {
        veth_pair(&self.peer, "und0", &self.ns, "eth1").expect("veth pair");
        self.peer
            .configure("und0", "10.78.0.1/24")
            .expect("peer addr");
        self.ns
            .configure("eth1", "10.78.0.2/24")
            .expect("collector addr");
    }

    /// GET `path` from inside the namespace until `want(status, body)`
    /// holds or 10 s pass; returns the last answer.
    fn poll_until(
        &self,
        addr: SocketAddr,
        path: &str,
        want: fn(&str, &str) -> bool,
    ) -> (String, String, Duration) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let answer =
                    exchange(addr, request.as_bytes(), Duration::from_secs(2)).unwrap_or_default();
                if want(&answer.0, &answer.1) || Instant::now() > deadline {
                    return Ok(answer);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .join()
        .expect("probe thread")
        .expect("probe")
    }

    /// Runs `f` on a thread inside the namespace.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> std::thread::JoinHandle<anyhow::Result<T>> {
        self.ns.spawn_in(f).expect("enter the collector netns")
    }

    /// Waits until something accepts connections on `addr` in the namespace.
    fn wait_for_listener(&self, addr: SocketAddr) {
        self.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                anyhow::ensure!(Instant::now() < deadline, "nothing listens on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
        .join()
        .expect("wait thread")
        .expect("the metrics endpoint came up");
    }
}

/// Sends `request` on a new connection and reads the response until the
/// server closes it or `Content-Length` bytes of body arrived; returns the
/// status line, the body, and how long it took. `None` on a timeout.
fn exchange(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Option<(String, String, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(request).ok()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if let Some(complete) = complete_response(&response) {
            response.truncate(complete);
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
        started.elapsed(),
    ))
}

/// The length of the first complete response in `bytes`, if it is all there.
fn complete_response(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (bytes.len() >= end + length).then_some(end + length)
}

#[test]
fn slowloris_and_idle_connections_delay_neither_scrapes_nor_the_end_of_the_capture() {
    if !privileged("metrics under slowloris") {
        return;
    }
    let collector = Collector::new("ms");
    let metrics: SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    let duration = 6.0;
    let started = Instant::now();
    let child = collector
        .ns
        .command(
            vxdecap_path(),
            &[
                "capture",
                "-i",
                "eth1",
                "-q",
                "--duration",
                &duration.to_string(),
                "--metrics",
                &metrics.to_string(),
            ],
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the capture");
    let capture = ChildGuard::new(child);
    collector.wait_for_listener(metrics);

    let done = Arc::new(AtomicBool::new(false));
    // One byte every 1.5 s of a request head that never ends, on a new
    // connection whenever the server closes the last one.
    let slowloris = {
        let done = Arc::clone(&done);
        collector.spawn(move || {
            let mut sent = 0;
            while !done.load(Ordering::Relaxed) {
                let Ok(mut stream) = TcpStream::connect(metrics) else {
                    break; // the capture has ended
                };
                let mut open = stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .is_ok();
                while open && !done.load(Ordering::Relaxed) {
                    for _ in 0..15 {
                        if !done.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    open = stream.write_all(b"a").is_ok();
                    sent += usize::from(open);
                }
            }
            Ok(sent)
        })
    };
    // 300 connections that say nothing, held open.
    let idle = {
        let done = Arc::clone(&done);
        collector.spawn(move || {
            let mut held = Vec::new();
            for _ in 0..300 {
                // A full accept queue drops a SYN; the kernel resends it after 1 s.
                match TcpStream::connect_timeout(&metrics, Duration::from_secs(3)) {
                    Ok(s) => held.push(s),
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            let opened = held.len();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(opened)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // Scrapes, one every 250 ms, while both keep at it.
    let scrapes = collector.spawn(move || {
        let mut times = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let got = exchange(
                metrics,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Duration::from_secs(3),
            );
            let Some((status, body, took)) = got else {
                anyhow::bail!("a scrape got no answer within 3 s");
            };
            anyhow::ensure!(status == "HTTP/1.1 200 OK", "{status}");
            anyhow::ensure!(body.contains("vxdecap_queue_info{"), "{body}");
            times.push(took);
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(times)
    });
    let times = scrapes.join().expect("scrape thread");

    // The capture ends on time, whoever is still connected.
    let output = {
        let deadline = started + Duration::from_secs_f64(duration + 10.0);
        let mut capture = capture;
        loop {
            if capture.child_mut().try_wait().expect("wait").is_some() {
                break capture.wait_with_output().expect("capture output");
            }
            if Instant::now() > deadline {
                done.store(true, Ordering::Relaxed);
                let _ = capture.signal(nix::sys::signal::Signal::SIGKILL);
                let said = capture.wait_with_output().expect("capture output");
                panic!(
                    "--duration {duration} still running after {duration} + 10 s:\n{}",
                    String::from_utf8_lossy(&said.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ended = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let opened = idle.join().expect("idle thread").expect("idle connections");
    let slow_bytes = slowloris
        .join()
        .expect("slowloris thread")
        .expect("slowloris");
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();

    let times = times.unwrap_or_else(|e| panic!("{e:#}\n{summary}"));
    assert!(opened >= 250, "only {opened} idle connections opened");
    assert!(
        slow_bytes >= 2,
        "the slowloris client sent {slow_bytes} bytes"
    );
    assert!(
        times.len() >= 8,
        "{} scrapes in 3 s: {times:?}",
        times.len()
    );
    let slowest = times.iter().max().unwrap();
    eprintln!(
        "{} scrapes, slowest {slowest:?}; {opened} idle connections, {slow_bytes} slowloris bytes; --duration {duration} ended after {ended:?}",
        times.len()
    );
    assert!(
        *slowest < Duration::from_millis(500),
        "a scrape took {slowest:?}: {times:?}"
    );
    assert_eq!(output.status.code(), Some(0), "{summary}");
    assert!(
        summary.contains("inner frames written"),
        "the summary:\n{summary}"
    );
    assert!(
        ended < Duration::from_secs_f64(duration + 2.0),
        "--duration {duration} ended after {ended:?}:\n{summary}"
    );
}

#[test]
fn query_strings_bare_lf_and_host_names_are_answered() {
    if !privileged("metrics requests") {
        return;
    }
    let collector = Collector::new("mq");
    let capture = RunningCapture::start(
        &collector.ns,
        &[
            "-i",
            "eth1",
            "-q",
            "--metrics",
            &format!("localhost:{PORT}"),
        ],
    );
    let v4: SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    // Every address localhost has here (127.0.0.1, and ::1 where /etc/hosts says so).
    let local: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", PORT))
        .expect("resolve localhost")
        .collect();
    collector.wait_for_listener(v4);
    let answers = collector
        .spawn(move || {
            let t = Duration::from_secs(3);
            Ok([
                exchange(v4, b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", t),
                exchange(v4, b"GET /metrics HTTP/1.1\nHost: x\n\n", t),
                exchange(v4, b"GET /metrics HTTP/1.0\n\n", t),
                exchange(v4, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", t),
                exchange(
                    v4,
                    b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                    t,
                ),
            ]
            .into_iter()
            .chain(
                local
                    .into_iter()
                    .map(|addr| exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", t)),
            )
            .collect::<Vec<_>>())
        })
        .join()
        .expect("client thread")
        .expect("requests");
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains(&format!("metrics at http://127.0.0.1:{PORT}/metrics")),
        "{summary}"
    );
    let expect = [
        ("query string", "200 OK", true),
        ("bare LF", "200 OK", true),
        ("HTTP/1.0, bare LF, no Host", "200 OK", true),
        ("unknown path", "404 Not Found", false),
        ("POST", "405 Method Not Allowed", false),
    ];
    let localhost = answers.len() - expect.len();
    assert!(localhost >= 1);
    let expect = expect.into_iter().chain(std::iter::repeat_n(
        ("an address of localhost", "200 OK", true),
        localhost,
    ));
    for ((what, status, metrics), answer) in expect.zip(&answers) {
        let (got, body, _) = answer
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no answer\n{summary}"));
        assert_eq!(
            got.split_once(' ').map(|(_, s)| s),
            Some(status),
            "{what}: {got}"
        );
        assert_eq!(
            body.contains("vxdecap_queue_info{"),
            metrics,
            "{what}: {body}"
        );
    }
}

#[test]
fn sigint_ends_the_capture_at_once_while_a_slowloris_client_is_connected() {
    if !privileged("SIGINT with a slowloris client") {
        return;
    }
    let collector = Collector::new("mi");
    let metrics: SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    let capture = RunningCapture::start(
        &collector.ns,
        &["-i", "eth1", "-q", "--metrics", &metrics.to_string()],
    );
    collector.wait_for_listener(metrics);
    let done = Arc::new(AtomicBool::new(false));
    let slowloris = {
        let done = Arc::clone(&done);
        collector.spawn(move || {
            let mut stream = TcpStream::connect(metrics)?;
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")?;
            while !done.load(Ordering::Relaxed) && stream.write_all(b"X").is_ok() {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        })
    };
    // Should the capture wait on the client, the client stops after 10 s.
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(10);
            while !done.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (ok, summary) = capture.stop();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    watchdog.join().expect("watchdog");
    let _ = slowloris.join();
    assert!(ok, "exit 0 after one SIGINT:\n{summary}");
    assert!(summary.contains("inner frames written"), "{summary}");
    assert!(
        took < Duration::from_secs(2),
        "SIGINT took {took:?} to end the capture"
    );
}

#[test]
fn healthz_takes_the_collector_out_while_its_interface_is_gone() {
    if !privileged("/healthz") {
        return;
    }
    let collector = Collector::new("mz");
    let addr: SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    let capture = RunningCapture::start(
        &collector.ns,
        &["-i", "eth1", "-q", "--metrics", &addr.to_string()],
    );
    collector.wait_for_listener(addr);
    let ok = |status: &str, body: &str| status.ends_with("200 OK") && body == "ok\n";
    let (status, body, took) = collector.poll_until(addr, "/healthz", ok);
    assert!(ok(&status, &body), "{status}: {body}");
    eprintln!("/healthz answered in {took:?}");
    // Host servicing: the NIC goes away, and the probe says so.
    collector
        .ns
        .ip(&["link", "del", "eth1"])
        .expect("delete eth1");
    let gone = |status: &str, _: &str| status.ends_with("503 Service Unavailable");
    let (status, body, _) = collector.poll_until(addr, "/healthz", gone);
    assert!(gone(&status, &body), "{status}: {body}");
    assert!(body.starts_with("eth1 is gone"), "{body}");
    // It comes back: the program is attached and the socket bound again.
    collector.replug();
    let (status, body, _) = collector.poll_until(addr, "/healthz", ok);
    assert!(
        ok(&status, &body),
        "after the interface came back: {status}: {body}"
    );
    let (ok_exit, summary) = capture.stop();
    assert!(ok_exit, "{summary}");
    assert!(
        summary.contains("went away and came back 1 time(s)"),
        "{summary}"
    );
}
