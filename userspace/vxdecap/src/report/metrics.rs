//! `--metrics ADDR:PORT`: the capture's counters in the Prometheus text
//! exposition format (version 0.0.4), served over HTTP/1.1 (hyper on a
//! single-threaded tokio runtime) by one thread. Hostile clients are kept in
//! bounds: at most [`MAX_CONNECTIONS`] (a new one closes the oldest), a
//! request head within [`REQUEST_DEADLINE`], a connection for at most
//! [`CONNECTION_LIFETIME`]; and stopping never waits on a client.
//!
//! Everything is read from what the workers and analyzer threads already
//! publish (atomics, once per batch or every 250 ms), so a scrape costs the
//! data path nothing. The XDP program's per-CPU counters are read by the
//! main thread, which owns the program, and handed over here.

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vxdecap_wire::reassembly::ReassemblyEvent;
use vxdecap_wire::Reject;
use vxdecap_xsk::BindMode;

use crate::datapath::analyzers::AnalyzerProgress;
use crate::report::stats::{SharedSlow, SharedStats, StageCounter, VniCounts};
use crate::steer::{XdpCounter, XdpCounters};

/// VNIs listed by name; the rest are summed under `vni="other"`.
pub const TOP_VNIS: usize = 20;

/// One rx queue as the metrics show it.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// Rx queue index.
    pub queue: u32,
    /// CPU its worker is pinned to.
    pub cpu: Option<usize>,
    /// Bind mode the kernel granted.
    pub bind_mode: BindMode,
    /// The worker's receive policy (see [`crate::datapath::idle`]).
    pub rx_policy: crate::datapath::idle::RxPolicy,
    /// The worker's published counters.
    pub stage: Arc<SharedStats>,
    /// The worker's VNI table and socket counters.
    pub slow: Arc<SharedSlow>,
}

/// Everything a scrape reports.
#[derive(Debug)]
pub struct Metrics {
    interface: String,
    queues: Vec<QueueInfo>,
    analyzers: Vec<(String, Arc<AnalyzerProgress>)>,
    xdp: Mutex<XdpCounters>,
    restarts: Arc<AtomicU64>,
}

impl Metrics {
    /// Metrics of a capture on `interface`.
    pub fn new(
        interface: &str,
        queues: Vec<QueueInfo>,
        analyzers: Vec<(String, Arc<AnalyzerProgress>)>,
    ) -> Self {
        Metrics {
            interface: interface.to_owned(),
            queues,
            analyzers,
            xdp: Mutex::new(XdpCounters::default()),
            restarts: Arc::default(),
        }
    }

    /// The count of interface restarts (the main thread updates it).
    pub fn restarts(&self) -> Arc<AtomicU64> {
        self.restarts.clone()
    }

    /// The queues reported.
    pub fn queues(&self) -> &[QueueInfo] {
        &self.queues
    }

    /// Stores the XDP program's latest counters (main thread).
    pub fn set_xdp(&self, counters: XdpCounters) {
        if let Ok(mut xdp) = self.xdp.lock() {
            *xdp = counters;
        }
    }

    /// The busiest VNIs over all queues, and the frames of all the others.
    pub fn top_vnis(&self, n: usize) -> (Vec<(u32, u64)>, u64) {
        let tables: Vec<VniCounts> = self.queues.iter().map(|q| q.slow.vnis()).collect();
        VniCounts::top(tables.iter(), n)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let iface = escape(&self.interface);
        let stages: Vec<_> = self.queues.iter().map(|q| q.stage.snapshot()).collect();

        header(
            &mut out,
            "vxdecap_queue_info",
            "gauge",
            "Rx queues captured: worker CPU, AF_XDP bind mode and receive policy (value 1).",
        );
        for q in &self.queues {
            let cpu = q.cpu.map_or("none".to_owned(), |c| c.to_string());
            let _ = writeln!(
                out,
                "vxdecap_queue_info{{interface=\"{iface}\",queue=\"{}\",cpu=\"{cpu}\",bind_mode=\"{}\",rx_policy=\"{}\"}} 1",
                q.queue, q.bind_mode, q.rx_policy
            );
        }
        let per_queue = [
            (
                StageCounter::Received,
                "vxdecap_received_frames_total",
                "Outer frames received from the AF_XDP socket.",
            ),
            (
                StageCounter::ReceivedBytes,
                "vxdecap_received_bytes_total",
                "Bytes of those outer frames.",
            ),
            (
                StageCounter::Delivered,
                "vxdecap_decapsulated_frames_total",
                "Inner frames decapsulated and offered to the analyzers.",
            ),
            (
                StageCounter::DeliveredBytes,
                "vxdecap_decapsulated_bytes_total",
                "Bytes of those inner frames.",
            ),
            (
                StageCounter::NoRxTimestamp,
                "vxdecap_no_rx_timestamp_frames_total",
                "Frames without the XDP receive record, stamped in user space.",
            ),
        ];
        for (counter, name, help) in per_queue {
            header(&mut out, name, "counter", help);
            for (q, s) in self.queues.iter().zip(&stages) {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", q.queue, s.get(counter));
            }
        }
        header(
            &mut out,
            "vxdecap_interface_restarts_total",
            "counter",
            "Times the interface went away and came back (hot-plug), sockets rebuilt.",
        );
        let _ = writeln!(
            out,
            "vxdecap_interface_restarts_total{{interface=\"{iface}\"}} {}",
            self.restarts.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "vxdecap_outer_fragments_total",
            "counter",
            "Outer IPv4 fragment reassembly, per queue: fragments taken, datagrams reassembled, and fragments or datagrams dropped by reason.",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            for event in ReassemblyEvent::ALL {
                let _ = writeln!(
                    out,
                    "vxdecap_outer_fragments_total{{queue=\"{}\",event=\"{}\"}} {}",
                    q.queue,
                    event.name(),
                    s.reassembly(event)
                );
            }
        }
        header(
            &mut out,
            "vxdecap_fragment_packets_total",
            "counter",
            "Outer IPv4 fragments not handed on as a datagram of their own, in packets, per queue: merged into a reassembled datagram (k-1 of its k fragments), or dropped with their datagram by reason; with the frames written and the other reasons they add up to the frames received.",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            for event in crate::report::summary::FRAGMENT_OUTCOMES {
                let _ = writeln!(
                    out,
                    "vxdecap_fragment_packets_total{{queue=\"{}\",outcome=\"{}\"}} {}",
                    q.queue,
                    crate::report::summary::fragment_reason(event),
                    s.reassembly_packets(event)
                );
            }
        }
        header(
            &mut out,
            "vxdecap_fragments_pending",
            "gauge",
            "Outer IPv4 fragments held by datagrams still being reassembled, per queue.",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            let _ = writeln!(
                out,
                "vxdecap_fragments_pending{{queue=\"{}\"}} {}",
                q.queue,
                s.get(StageCounter::FragmentsPending)
            );
        }
        header(
            &mut out,
            "vxdecap_allowlist_dropped_datagrams_total",
            "counter",
            "Reassembled datagrams dropped in user space by the allowlists (XDP could not see their VXLAN header, or the lists changed since their first fragment), per queue and reason.",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            for counter in [
                StageCounter::FragmentSourceNotAllowed,
                StageCounter::FragmentVniNotAllowed,
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_allowlist_dropped_datagrams_total{{queue=\"{}\",reason=\"{}\"}} {}",
                    q.queue,
                    counter.name(),
                    s.get(counter)
                );
            }
        }
        header(
            &mut out,
            "vxdecap_truncated_mirror_frames_total",
            "counter",
            "Inner frames the mirror cut short (written with their original length).",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            let _ = writeln!(
                out,
                "vxdecap_truncated_mirror_frames_total{{queue=\"{}\"}} {}",
                q.queue,
                s.get(StageCounter::TruncatedMirror)
            );
        }
        header(
            &mut out,
            "vxdecap_rejected_frames_total",
            "counter",
            "Received frames that were not valid VXLAN, by reason.",
        );
        for (q, s) in self.queues.iter().zip(&stages) {
            for reason in Reject::ALL {
                let _ = writeln!(
                    out,
                    "vxdecap_rejected_frames_total{{queue=\"{}\",reason=\"{}\"}} {}",
                    q.queue,
                    reason.name(),
                    s.rejected(reason)
                );
            }
        }
        header(&mut out, "vxdecap_dropped_frames_total", "counter", "Frames lost before an analyzer, by cause: AF_XDP socket counters (XDP_STATISTICS) and analyzer backpressure.");
        for (q, s) in self.queues.iter().zip(&stages) {
            let xsk = q.slow.xsk();
            for (cause, n) in [
                ("xsk_rx_ring_full", xsk.rx_ring_full),
                ("xsk_fill_ring_empty", xsk.rx_fill_ring_empty),
                ("xsk_rx_dropped", xsk.rx_dropped),
                ("xsk_rx_invalid_descs", xsk.rx_invalid_descs),
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_dropped_frames_total{{queue=\"{}\",cause=\"{cause}\"}} {n}",
                    q.queue
                );
            }
            for (a, (name, _)) in self.analyzers.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "vxdecap_dropped_frames_total{{queue=\"{}\",cause=\"analyzer_backpressure\",analyzer=\"{}\"}} {}",
                    q.queue,
                    escape(name),
                    s.analyzer_backpressure(a)
                );
            }
        }
        header(&mut out, "vxdecap_xdp_frames_total", "counter", "Decisions of the XDP steering program: redirected to AF_XDP, or passed to the kernel and why.");
        let xdp = self.xdp.lock().map(|x| *x).unwrap_or_default();
        for counter in XdpCounter::ALL {
            let _ = writeln!(
                out,
                "vxdecap_xdp_frames_total{{interface=\"{iface}\",decision=\"{}\"}} {}",
                counter.name(),
                xdp.get(counter)
            );
        }
        header(
            &mut out,
            "vxdecap_vni_frames_total",
            "counter",
            "Inner frames per VNI: the busiest by name, the rest as vni=\"other\".",
        );
        let (top, other) = self.top_vnis(TOP_VNIS);
        for (vni, n) in top {
            let _ = writeln!(out, "vxdecap_vni_frames_total{{vni=\"{vni}\"}} {n}");
        }
        let _ = writeln!(out, "vxdecap_vni_frames_total{{vni=\"other\"}} {other}");
        header(
            &mut out,
            "vxdecap_analyzer_frames_total",
            "counter",
            "Inner frames handed to each analyzer.",
        );
        for (name, progress) in &self.analyzers {
            let _ = writeln!(
                out,
                "vxdecap_analyzer_frames_total{{analyzer=\"{}\"}} {}",
                escape(name),
                progress.written.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "vxdecap_analyzer_lost_frames_total",
            "counter",
            "Inner frames meant for an analyzer that its output did not write: output_write_failed (taken, then a write error such as a full disk or a closed pipe), after_output_closed (arrived after that error).",
        );
        for (name, progress) in &self.analyzers {
            for (reason, n) in [
                ("output_write_failed", &progress.write_failed),
                ("after_output_closed", &progress.after_output_closed),
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_analyzer_lost_frames_total{{analyzer=\"{}\",reason=\"{reason}\"}} {}",
                    escape(name),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        header(&mut out, "vxdecap_receive_latency_seconds", "gauge", "Time from the XDP receive timestamp to the hand-over to the analyzer, over the run so far (hdrhistogram, per worker, merged).");
        for (name, progress) in &self.analyzers {
            if let Some(l) = progress.latency() {
                for (q, ns) in [
                    ("0.5", l.p50),
                    ("0.99", l.p99),
                    ("0.999", l.p999),
                    ("1", l.max),
                ] {
                    let _ = writeln!(
                        out,
                        "vxdecap_receive_latency_seconds{{analyzer=\"{}\",quantile=\"{q}\"}} {}",
                        escape(name),
                        ns as f64 / 1e9
                    );
                }
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Most connections served at once. A new connection past this closes the
/// oldest one, so hostile clients holding connections cannot lock a scraper
/// out (nginx drops idle keep-alive connections the same way when it runs
/// out).
pub const MAX_CONNECTIONS: usize = 64;
/// A request's head must have arrived this long after the connection opened
/// or the previous response was handed over (slowloris, idle connections).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// A connection is closed this long after it opened, whatever it is doing
/// (a client that never reads its response); Prometheus reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How often the server looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// `--metrics`: `ADDR:PORT`, or `HOST:PORT` with a host name resolved to
/// every address it has (`localhost:9419` serves 127.0.0.1 and ::1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// As the user wrote it.
    pub text: String,
    /// What it resolved to (at least one address).
    pub addrs: Vec<SocketAddr>,
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use std::net::ToSocketAddrs;
        let bad = |why: String| {
            format!("{text:?} is not ADDR:PORT or HOST:PORT such as 0.0.0.0:9419 or localhost:9419: {why}")
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::from(addr));
        }
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in text.to_socket_addrs().map_err(|e| bad(e.to_string()))? {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(bad("the name has no address".into()));
        }
        Ok(Endpoint {
            text: text.to_owned(),
            addrs,
        })
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint {
            text: addr.to_string(),
            addrs: vec![addr],
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Binds every address of the endpoint (done before the capture starts, so
/// a bad address fails early). An address of a host name that this host
/// does not have (`::1` with IPv6 off) is skipped while another binds.
pub fn bind(endpoint: &Endpoint) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    let mut skipped = None;
    for &addr in &endpoint.addrs {
        match listen(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e)
                if endpoint.addrs.len() > 1
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
                    ) =>
            {
                skipped = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (listeners.is_empty(), skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(listeners),
    }
}

/// A listening socket on `addr`, non-blocking, with room for
/// [`LISTEN_BACKLOG`] connections not yet accepted (std's 128 overflows
/// when a few hundred clients connect at once, and a scraper's connection
/// then waits for a SYN retransmit).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // As std does: a restarted capture can bind while old connections linger.
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(fd.as_raw_fd(), &socket::SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::new(LISTEN_BACKLOG)?)?;
    Ok(TcpListener::from(fd))
}

/// Connections the kernel queues for the server to accept.
const LISTEN_BACKLOG: i32 = 1024;

/// How the server treats its clients; [`Limits::default`] is what a
/// capture uses (tests shorten the times).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`REQUEST_DEADLINE`].
    pub request_deadline: Duration,
    /// See [`CONNECTION_LIFETIME`].
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            request_deadline: REQUEST_DEADLINE,
            connection_lifetime: CONNECTION_LIFETIME,
        }
    }
}

/// Serves `metrics` on `listeners` until `stop` is raised, with the default
/// [`Limits`].
pub fn serve(
    listeners: Vec<TcpListener>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    serve_with(listeners, metrics, stop, Limits::default())
}

/// Serves `metrics` on `listeners` until `stop` is raised: HTTP/1.1 (hyper)
/// on a single-threaded tokio runtime in a thread of its own, so scrapes are
/// served concurrently and no client can hold up another, or the thread's
/// end: once `stop` is seen (within 20 ms), every connection still open is
/// dropped, and the thread ends.
pub fn serve_with(
    listeners: Vec<TcpListener>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    limits: Limits,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("vxdecap-metrics".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listeners, metrics, stop, limits));
            // Dropping the runtime drops every connection task: no client is waited on.
            drop(runtime);
        })
}

async fn accept_loop(
    listeners: Vec<TcpListener>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    limits: Limits,
) {
    let listeners: Vec<tokio::net::TcpListener> = listeners
        .into_iter()
        .filter_map(|l| {
            tokio::net::TcpListener::from_std(l)
                .map_err(|e| tracing::warn!(error = %e, "metrics listener unusable"))
                .ok()
        })
        .collect();
    let mut connections = Connections::new(limits.max_connections);
    let mut tick = tokio::time::interval(STOP_POLL);
    loop {
        let accepted = tokio::select! {
            accepted = accept_any(&listeners) => accepted,
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(stream) => connections.spawn(serve_connection(stream, metrics.clone(), limits)),
            Err(e) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The next connection on any of `listeners`.
async fn accept_any(listeners: &[tokio::net::TcpListener]) -> io::Result<tokio::net::TcpStream> {
    std::future::poll_fn(|cx| {
        for listener in listeners {
            if let std::task::Poll::Ready(accepted) = listener.poll_accept(cx) {
                return std::task::Poll::Ready(accepted.map(|(stream, _)| stream));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The open connections, oldest first, at most `cap`.
struct Connections {
    tasks: tokio::task::JoinSet<()>,
    open: std::collections::VecDeque<tokio::task::AbortHandle>,
    cap: usize,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Connections {
            tasks: tokio::task::JoinSet::new(),
            open: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Serves a new connection, closing the oldest ones past the cap.
    fn spawn(&mut self, connection: impl std::future::Future<Output = ()> + Send + 'static) {
        while self.tasks.try_join_next().is_some() {}
        self.open.retain(|task| !task.is_finished());
        while self.open.len() >= self.cap {
            if let Some(oldest) = self.open.pop_front() {
                oldest.abort();
                tracing::debug!("metrics: too many connections, closed the oldest");
            }
        }
        self.open.push_back(self.tasks.spawn(connection));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, metrics: Arc<Metrics>, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let response = respond(&request, &metrics);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.request_deadline)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    match tokio::time::timeout(limits.connection_lifetime, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection ended"),
        Err(_) => tracing::debug!("metrics connection closed after its lifetime"),
    }
}

/// The answer to one request: `/metrics` (any query string ignored), an
/// index at `/`, 404 elsewhere; GET and HEAD only.
fn respond<B>(request: &hyper::Request<B>, metrics: &Metrics) -> hyper::Response<String> {
    use hyper::{header, Method, StatusCode};
    let (status, kind, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (&Method::GET | &Method::HEAD, "/") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "vxdecap: metrics at /metrics\n".to_owned(),
        ),
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET or HEAD only\n".to_owned(),
        ),
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn one_queue_metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(
            "eth1",
            vec![QueueInfo {
                queue: 0,
                cpu: Some(1),
                bind_mode: BindMode::Copy,
                rx_policy: crate::datapath::idle::RxPolicy::Sleep,
                stage: Arc::default(),
                slow: Arc::default(),
            }],
            vec![("count".into(), Arc::new(AnalyzerProgress::default()))],
        ))
    }

    /// A server on 127.0.0.1 (a free port) with `limits`.
    struct Server {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        fn start(limits: Limits) -> Server {
            let endpoint: Endpoint = "127.0.0.1:0".parse().unwrap();
            let listeners = bind(&endpoint).expect("bind");
            let addr = listeners[0].local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let thread =
                serve_with(listeners, one_queue_metrics(), stop.clone(), limits).expect("serve");
            Server {
                addr,
                stop,
                thread: Some(thread),
            }
        }

        /// Raises stop; returns how long the thread took to end.
        fn stop(mut self) -> Duration {
            let started = Instant::now();
            self.stop.store(true, Ordering::Relaxed);
            self.thread.take().unwrap().join().unwrap();
            started.elapsed()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Reads one response (head and Content-Length body) from `stream`.
    fn read_response(stream: &mut TcpStream) -> io::Result<(String, String)> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    let status = head.lines().next().unwrap_or_default().to_owned();
                    return Ok((status, body[..length].to_owned()));
                }
            }
        }
    }

    fn get(addr: SocketAddr, request: &[u8]) -> io::Result<(String, String)> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(request)?;
        read_response(&mut stream)
    }

    #[test]
    fn scrapes_ignore_the_query_and_bare_lf_requests_are_answered() {
        let server = Server::start(Limits::default());
        for (request, status, body) in [
            (
                &b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
                "HTTP/1.1 200 OK",
                "vxdecap_queue_info{",
            ),
            (
                b"GET /metrics HTTP/1.1\nHost: a\n\n",
                "HTTP/1.1 200 OK",
                "vxdecap_queue_info{",
            ),
            (
                b"GET /metrics HTTP/1.0\n\n",
                "200 OK",
                "vxdecap_queue_info{",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                "HTTP/1.1 200 OK",
                "at /metrics",
            ),
            (
                b"GET /metricsx HTTP/1.1\r\nHost: a\r\n\r\n",
                "HTTP/1.1 404 Not Found",
                "try /metrics",
            ),
            (
                b"PUT /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
                "GET or HEAD",
            ),
            (b"NONSENSE\r\n\r\n", "HTTP/1.1 400 Bad Request", ""),
        ] {
            let text = String::from_utf8_lossy(request);
            let (got, content) =
                get(server.addr, request).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(got.ends_with(status), "{text:?}: {got}");
            assert!(content.contains(body), "{text:?}: {content}");
        }
        // Keep-alive: two requests on one connection, and HEAD has no body.
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            let (status, body) = read_response(&mut stream).unwrap();
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(body.contains("# TYPE vxdecap_queue_info gauge"), "{body}");
        }
        assert!(server.stop() < Duration::from_millis(500));
    }

    #[test]
    fn hostile_clients_delay_neither_scrapes_nor_the_stop() {
        let limits = Limits {
            max_connections: 16,
            request_deadline: Duration::from_millis(700),
            connection_lifetime: Duration::from_secs(60),
        };
        let server = Server::start(limits);
        // A slowloris client: a request head one byte at a time, never done.
        let mut slow = TcpStream::connect(server.addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nX: ").unwrap();
        // 300 idle connections: 16 served at a time, the oldest closed first.
        let idle: Vec<TcpStream> = (0..300)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        let mut slowest = Duration::ZERO;
        for i in 0..20 {
            let _ = slow.write_all(b"a");
            let started = Instant::now();
            let (status, _) = get(server.addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap_or_else(|e| panic!("scrape {i}: {e}"));
            assert_eq!(status, "HTTP/1.1 200 OK");
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            slowest < Duration::from_millis(300),
            "slowest scrape {slowest:?}"
        );
        // The request deadline has passed: the slowloris client was cut off.
        slow.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let cut = match slow.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        };
        assert!(cut, "the slowloris connection is still open");
        // Stopping does not wait for anyone: connections still open are dropped.
        let mut held = TcpStream::connect(server.addr).unwrap();
        held.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let took = server.stop();
        assert!(took < Duration::from_millis(200), "stop took {took:?}");
        drop(idle);
    }

    #[test]
    fn host_names_resolve_to_every_address() {
        let local: Endpoint = "localhost:9419".parse().expect("localhost");
        assert!(!local.addrs.is_empty());
        assert!(local
            .addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9419));
        assert_eq!(local.to_string(), "localhost:9419");
        let literal: Endpoint = "[::1]:80".parse().unwrap();
        assert_eq!(literal.addrs, ["[::1]:80".parse::<SocketAddr>().unwrap()]);
        for bad in [
            "9419",
            "localhost",
            "no-such-host.invalid:80",
            "1.2.3.4:99999",
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err();
            assert!(e.contains("is not ADDR:PORT or HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn render_names_every_family_once_and_escapes_labels() {
        let stage = Arc::new(SharedStats::default());
        let slow = Arc::new(SharedSlow::default());
        let progress = Arc::new(AnalyzerProgress::default());
        let mut vnis = VniCounts::default();
        vnis.add(27);
        slow.publish_vnis(&vnis);
        let metrics = Metrics::new(
            "eth\"1",
            vec![QueueInfo {
                queue: 0,
                cpu: Some(1),
                bind_mode: BindMode::Copy,
                rx_policy: crate::datapath::idle::RxPolicy::Sleep,
                stage,
                slow,
            }],
            vec![("pcap".into(), progress.clone())],
        );
        progress.write_failed.store(7, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains(
                "vxdecap_analyzer_lost_frames_total{analyzer=\"pcap\",reason=\"output_write_failed\"} 7"
            ),
            "{text}"
        );
        assert!(text.contains("interface=\"eth\\\"1\""), "{text}");
        assert!(
            text.contains("vxdecap_vni_frames_total{vni=\"27\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vxdecap_vni_frames_total{vni=\"other\"} 0"),
            "{text}"
        );
        assert!(text.contains("bind_mode=\"copy\""), "{text}");
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        let mut names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(|l| l.split(' ').nth(2).unwrap_or_default())
            .collect();
        let all = names.len();
        names.dedup();
        assert_eq!(names.len(), all, "each family declared once");
    }
}
