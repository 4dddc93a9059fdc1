//! The collectors' health, as the relay sees it: each one's
//! `http://ADDR:PORT/healthz` (the capture's metrics listener) polled from
//! a thread of its own (hyper's HTTP/1 client on a single-threaded tokio
//! runtime). A collector that fails [`FALL`] probes in a row is marked
//! down, and up again after [`RISE`] good ones; the relay's main thread
//! sees the change and swaps in a table without it.
//!
//! The probe's TCP connection also keeps the kernel's neighbour entry of
//! the next hop towards each collector fresh, which the XDP program needs
//! (it counts `pass_no_neighbour` without one; the relay's main thread then
//! sends a datagram towards the collectors to have it resolved).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Failed probes in a row that take a collector out.
pub const FALL: u32 = 2;
/// Good probes in a row that bring it back.
pub const RISE: u32 = 2;

/// How to poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// The port of each collector's `/healthz`; `None`: no health checks.
    pub port: Option<u16>,
    /// Between two rounds of probes.
    pub interval: Duration,
    /// A probe's answer must come within this.
    pub timeout: Duration,
}

/// The collectors' state, shared between the prober and the main thread.
#[derive(Debug)]
pub struct Health {
    up: Mutex<Vec<bool>>,
    /// Bumped on every change of `up`.
    generation: AtomicU64,
}

impl Health {
    /// `n` collectors, all up until a probe says otherwise.
    pub fn new(n: usize) -> Self {
        Self {
            up: Mutex::new(vec![true; n]),
            generation: AtomicU64::new(0),
        }
    }

    /// Which collectors are up now, and the generation of that answer.
    pub fn snapshot(&self) -> (u64, Vec<bool>) {
        let up = self.up.lock().map(|u| u.clone()).unwrap_or_default();
        (self.generation.load(Ordering::Acquire), up)
    }

    fn set(&self, index: usize, up: bool) {
        if let Ok(mut all) = self.up.lock() {
            if all.get(index).is_some_and(|&was| was != up) {
                all[index] = up;
                self.generation.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// Starts the prober for `collectors` until `stop` is raised.
pub fn spawn(
    collectors: Vec<std::net::IpAddr>,
    config: HealthConfig,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("vxdecap-health".into())
        .spawn(move || runtime.block_on(poll(collectors, config, health, stop)))
}

async fn poll(
    collectors: Vec<std::net::IpAddr>,
    config: HealthConfig,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) {
    let Some(port) = config.port else {
        return;
    };
    let mut streaks = vec![(0u32, 0u32); collectors.len()]; // (good, bad) in a row
    while !stop.load(Ordering::Relaxed) {
        let probes = collectors.iter().map(|&addr| {
            let target = SocketAddr::from((addr, port));
            async move { probe(target, config.timeout).await }
        });
        let results = futures_join_all(probes).await;
        for (i, result) in results.into_iter().enumerate() {
            let (good, bad) = &mut streaks[i];
            match result {
                Ok(()) => {
                    *good += 1;
                    *bad = 0;
                    if *good >= RISE {
                        if health.snapshot().1.get(i) == Some(&false) {
                            tracing::info!(target: crate::report::CONSOLE, "collector {} is healthy again: back in the table", collectors[i]);
                        }
                        health.set(i, true);
                    }
                }
                Err(reason) => {
                    *bad += 1;
                    *good = 0;
                    if *bad >= FALL {
                        if health.snapshot().1.get(i) == Some(&true) {
                            tracing::warn!(target: crate::report::CONSOLE, "collector {} is unhealthy ({reason}): taken out of the table", collectors[i]);
                        }
                        health.set(i, false);
                    }
                }
            }
        }
        let mut waited = Duration::ZERO;
        while waited < config.interval && !stop.load(Ordering::Relaxed) {
            let step = Duration::from_millis(20).min(config.interval.saturating_sub(waited));
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

/// Runs the probes together and returns their results in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("a probe task does not panic"));
    }
    out
}

/// One `GET /healthz`: `Ok` for a 200 within `timeout`, else why not.
pub async fn probe(target: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, get_healthz(target)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn get_healthz(target: SocketAddr) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, target.to_string())
        .body(String::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    driver.abort();
    let status = response?.status();
    if status == hyper::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("/healthz answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::time::Instant;

    use super::*;

    /// A one-thread HTTP server on loopback: every connection gets its
    /// request read, then `answer` written after `delay` (or the connection
    /// closed at once when `answer` is empty). Lives as long as the test.
    fn server(delay: Duration, answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request);
                    std::thread::sleep(delay);
                    let _ = stream.write_all(answer.as_bytes());
                });
            }
        });
        addr
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n";
    const DOWN: &str =
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nconnection: close\r\n\r\ndown\n";

    fn probe_now(target: SocketAddr, timeout: Duration) -> (Result<(), String>, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("runtime");
        let start = Instant::now();
        let result = runtime.block_on(probe(target, timeout));
        (result, start.elapsed())
    }

    #[test]
    fn a_probe_is_good_only_for_a_200_in_time() {
        let timeout = Duration::from_millis(300);
        assert_eq!(probe_now(server(Duration::ZERO, OK), timeout).0, Ok(()));
        let (down, _) = probe_now(server(Duration::ZERO, DOWN), timeout);
        assert!(down.as_ref().is_err_and(|e| e.contains("503")), "{down:?}");
        let (garbage, _) = probe_now(server(Duration::ZERO, "SSH-2.0-OpenSSH\r\n"), timeout);
        assert!(
            garbage.as_ref().is_err_and(|e| e.starts_with("HTTP")),
            "{garbage:?}"
        );
        let (closed, _) = probe_now(server(Duration::ZERO, ""), timeout);
        assert!(closed.is_err(), "{closed:?}");
    }

    #[test]
    fn a_slow_collector_fails_its_probe_at_the_timeout_not_at_its_answer() {
        // A collector that answers 200, but after 2 s: a probe with a 300 ms timeout
        // must give up at about 300 ms and say so.
        let timeout = Duration::from_millis(300);
        let (result, took) = probe_now(server(Duration::from_secs(2), OK), timeout);
        assert_eq!(result, Err("no answer within 300 ms".to_owned()));
        assert!(
            took >= timeout && took < Duration::from_millis(1500),
            "the probe took {took:?}"
        );
    }

    #[test]
    fn a_slow_collector_is_taken_out_and_a_fast_one_stays() {
        // Both answer 200; one only after 1 s. With a 150 ms timeout the slow one is
        // taken out after FALL rounds; the fast one never leaves.
        let fast = server(Duration::ZERO, OK);
        let slow = server(Duration::from_secs(1), OK);
        // A prober asks one port of every collector; these two listen on loopback ports
        // of their own, so each gets a prober.
        let health = Arc::new(Health::new(1));
        let slow_health = Arc::new(Health::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let config = |port| HealthConfig {
            port: Some(port),
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(150),
        };
        let loopback = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let a = spawn(
            loopback.clone(),
            config(fast.port()),
            Arc::clone(&health),
            Arc::clone(&stop),
        )
        .expect("prober");
        let b = spawn(
            loopback,
            config(slow.port()),
            Arc::clone(&slow_health),
            Arc::clone(&stop),
        )
        .expect("prober");
        let deadline = Instant::now() + Duration::from_secs(5);
        while slow_health.snapshot().1 != [false] && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            slow_health.snapshot().1,
            [false],
            "the slow collector stayed in"
        );
        assert_eq!(
            health.snapshot(),
            (0, vec![true]),
            "the fast collector moved"
        );
        stop.store(true, Ordering::Relaxed);
        a.join().expect("prober a");
        b.join().expect("prober b");
    }
}
