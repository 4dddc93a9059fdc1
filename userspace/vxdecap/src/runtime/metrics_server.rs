//! `--metrics ADDR:PORT`: serves the capture's [`Metrics`] over HTTP/1.1
//! (hyper on a single-threaded tokio runtime) in one thread. Hostile
//! clients are kept in bounds: at most [`MAX_CONNECTIONS`] (a new one closes
//! the oldest), a request head within [`REQUEST_DEADLINE`], a connection for
//! at most [`CONNECTION_LIFETIME`]; and stopping never waits on a client.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ParseError;
use crate::report::metrics::Metrics;

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
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use std::net::ToSocketAddrs as _;
        let bad = |why: String| {
            ParseError::new(format!("{text:?} is not ADDR:PORT or HOST:PORT such as 0.0.0.0:9419 or localhost:9419: {why}"))
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::from(addr));
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
        Ok(Self {
            text: text.to_owned(),
            addrs,
        })
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Self {
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
    use std::os::fd::AsRawFd as _;
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

/// What the server serves: the text at `/metrics` and the verdict at
/// `/healthz`. The capture's [`Metrics`] and the relay's metrics
/// ([`crate::relay::RelayMetrics`]) both are.
pub trait Exposition: Send + Sync + 'static {
    /// The Prometheus text exposition.
    fn render(&self) -> String;
    /// `Ok` while healthy, else the reason in one line.
    fn health(&self) -> Result<(), String>;
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        Self::render(self)
    }

    fn health(&self) -> Result<(), String> {
        Self::health(self)
    }
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
        Self {
            max_connections: MAX_CONNECTIONS,
            request_deadline: REQUEST_DEADLINE,
            connection_lifetime: CONNECTION_LIFETIME,
        }
    }
}

/// Serves `metrics` on `listeners` until `stop` is raised, with the default
/// [`Limits`].
pub fn serve<M: Exposition>(
    listeners: Vec<TcpListener>,
    metrics: Arc<M>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    serve_with(listeners, metrics, stop, Limits::default())
}

/// Serves `metrics` on `listeners` until `stop` is raised: HTTP/1.1 (hyper)
/// on a single-threaded tokio runtime in a thread of its own, so scrapes are
/// served concurrently and no client can hold up another, or the thread's
/// end: once `stop` is seen (within 20 ms), every connection still open is
/// dropped, and the thread ends.
pub fn serve_with<M: Exposition>(
    listeners: Vec<TcpListener>,
    metrics: Arc<M>,
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

async fn accept_loop<M: Exposition>(
    listeners: Vec<TcpListener>,
    metrics: Arc<M>,
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
            Ok(stream) => connections.spawn(serve_connection(stream, Arc::clone(&metrics), limits)),
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
        Self {
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

async fn serve_connection<M: Exposition>(
    stream: tokio::net::TcpStream,
    metrics: Arc<M>,
    limits: Limits,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let response = respond(&request, &*metrics);
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

/// The answer to one request: `/metrics` (any query string ignored),
/// `/healthz` (200 `ok`, or 503 and the reason, for load balancers' probes),
/// an index at `/`, 404 elsewhere; GET and HEAD only.
fn respond<B, M: Exposition>(request: &hyper::Request<B>, metrics: &M) -> hyper::Response<String> {
    use hyper::{header, Method, StatusCode};
    let (status, kind, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (&Method::GET | &Method::HEAD, "/healthz") => match metrics.health() {
            Ok(()) => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ok\n".to_owned(),
            ),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{reason}\n"),
            ),
        },
        (&Method::GET | &Method::HEAD, "/") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "vxdecap: metrics at /metrics, health at /healthz\n".to_owned(),
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
    use crate::report::metrics::QueueInfo;
    use crate::report::progress::AnalyzerProgress;
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::time::Instant;
    use vxdecap_xsk::BindMode;

    fn one_queue_metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(
            "eth1",
            vec![QueueInfo {
                device: String::new(),
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
        fn start(limits: Limits) -> Self {
            let endpoint: Endpoint = "127.0.0.1:0".parse().unwrap();
            let listeners = bind(&endpoint).expect("bind");
            let addr = listeners[0].local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let thread = serve_with(listeners, one_queue_metrics(), Arc::clone(&stop), limits)
                .expect("serve");
            Self {
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
    fn healthz_is_ok_only_while_the_capture_can_take_traffic() {
        let metrics = one_queue_metrics();
        let probe = |metrics: &Metrics| {
            let request = hyper::Request::get("/healthz").body(()).unwrap();
            let response = respond(&request, metrics);
            (response.status().as_u16(), response.body().clone())
        };
        assert_eq!(probe(&metrics), (200, "ok\n".to_owned()));
        metrics.set_unhealthy(Some("eth1 is gone: waiting for it to come back".into()));
        assert_eq!(
            probe(&metrics),
            (
                503,
                "eth1 is gone: waiting for it to come back\n".to_owned()
            )
        );
        metrics.set_unhealthy(None);
        assert_eq!(probe(&metrics).0, 200);
        // An output that failed takes the collector out of rotation too.
        metrics
            .analyzer(0)
            .unwrap()
            .write_failed
            .store(3, Ordering::Relaxed);
        assert_eq!(
            probe(&metrics),
            (
                503,
                "the output of count failed: 3 frame(s) not written\n".to_owned()
            )
        );
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
        let idle: Vec<TcpStream> =
            std::iter::repeat_with(|| TcpStream::connect(server.addr).unwrap())
                .take(300)
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
            let e = bad.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains("is not ADDR:PORT or HOST:PORT"), "{bad}: {e}");
        }
    }
}
