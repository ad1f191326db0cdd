//! The HTTP listener ([`serve`]): an accept loop over hyper's HTTP/1 connections with the timers
//! a bare `axum::serve` lacks, a cap on open connections, and a shutdown with a deadline.
//!
//! A connection is always in one `Phase`, and its stream (`TimedStream`) fails it when the
//! phase's deadline passes while it waits:
//! - `Head`, waiting for a request head: all of it within `header_read_timeout_ms` of the
//!   connection opening (its first request) or of the head's first byte (a later one);
//! - `Busy`, from the head to the end of the response: no connection timer; the body must
//!   arrive within `body_timeout_ms` of the head (`DeadlineBody`; else 408 and the connection
//!   closes), and the passive budget bounds the handler;
//! - `Idle`, kept alive after a response: the next request's first byte within
//!   `idle_timeout_ms`.
//!
//! hyper's own `header_read_timeout` is not used: its timer also runs while a kept-alive
//! connection waits for its next request, which would make the header timeout the idle one.
//!
//! Over `max_connections` (lowered at start to what the file descriptor limit leaves), a new
//! connection is reset as soon as it is accepted. A failed accept (EMFILE) pauses the loop
//! briefly, doubling up to half a second, and is logged once until an accept succeeds again.
//! On shutdown the listener closes, connections with no request being served close at once,
//! the others finish their request (keep-alive off), and after `shutdown_grace_ms` whatever
//! is left is closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::HttpConfig;
use crate::telemetry::{HttpMetrics, HttpTimeout};

/// Connections the kernel may hold until they are accepted (the standard library's 128 is a
/// burst of a few milliseconds; past it, a client's SYN is dropped and it retries a second later).
const LISTEN_BACKLOG: i32 = 1024;

/// The first pause after a failed accept; each further failure doubles it, up to the most.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_millis(500);

/// Serves `router` on `listener` with the timers and cap of `config` until `shutdown`
/// resolves; returns once every connection is closed (within `shutdown_grace_ms` of it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &HttpConfig,
    metrics: HttpMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let cap = connection_cap(config.max_connections);
    // Listening again only changes the backlog (Linux and the BSDs).
    if let Err(e) = socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG) {
        tracing::warn!("HTTP: cannot raise the listen backlog to {LISTEN_BACKLOG}: {e}");
    }
    let shared = Arc::new(Shared {
        router,
        header_timeout: Duration::from_millis(config.header_read_timeout_ms),
        body_timeout: Duration::from_millis(config.body_timeout_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        metrics,
        stopping: CancellationToken::new(),
        open: AtomicUsize::new(0),
    });
    let force = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    // The timers are this module's (see the module docs).
    builder.header_read_timeout(None);

    let mut shutdown = pin!(shutdown);
    let mut accept = AcceptTrouble::default();
    let mut refused_since: Option<u64> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                shared.metrics.accept_error();
                let pause = accept.failed(&e);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        accept.recovered();
        if shared.open.load(Ordering::Relaxed) >= cap {
            // A reset, at once: the client fails fast instead of waiting on a full server.
            let _ = stream.set_zero_linger();
            drop(stream);
            shared.metrics.refused();
            let refused = refused_since.get_or_insert_with(|| {
                tracing::warn!(
                    max_connections = cap,
                    "HTTP: max_connections are open; new connections are reset until some close"
                );
                0
            });
            *refused += 1;
            continue;
        }
        if let Some(refused) = refused_since.take() {
            tracing::info!(refused, "HTTP: below max_connections again");
        }
        let connection = Connection::open(&shared);
        let conn = Arc::clone(&connection.state);
        let io = TimedStream {
            stream,
            conn: Arc::clone(&conn),
            shared: Arc::clone(&shared),
            timer: Box::pin(tokio::time::sleep_until(
                conn.opened + shared.header_timeout,
            )),
        };
        let service_shared = Arc::clone(&shared);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            respond(Arc::clone(&service_shared), Arc::clone(&conn), request)
        });
        let served = builder.serve_connection(TokioIo::new(io), service);
        let (stopping, force) = (shared.stopping.clone(), force.clone());
        connections.spawn(async move {
            let _open = connection;
            let mut served = pin!(served);
            tokio::select! {
                result = served.as_mut() => return log_end(result),
                () = stopping.cancelled() => {}
            }
            // Keep-alive off: a request being served finishes, then the connection closes; a
            // connection between requests or with half a head fails its next read at once.
            served.as_mut().graceful_shutdown();
            tokio::select! {
                result = served.as_mut() => log_end(result),
                () = force.cancelled() => {}
            }
        });
    }

    drop(listener);
    shared.stopping.cancel();
    connections.close();
    tracing::info!(
        connections = shared.open.load(Ordering::Relaxed),
        "HTTP: stopped accepting; closing idle connections and finishing requests in flight"
    );
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = shared.open.load(Ordering::Relaxed),
            grace_ms = config.shutdown_grace_ms,
            "HTTP: closing the connections still open after shutdown_grace_ms"
        );
        force.cancel();
        connections.wait().await;
    }
}

/// What every connection of the listener shares.
#[derive(Debug)]
struct Shared {
    router: Router,
    header_timeout: Duration,
    body_timeout: Duration,
    idle_timeout: Duration,
    metrics: HttpMetrics,
    /// Cancelled when the server stops accepting.
    stopping: CancellationToken,
    /// Connections open now.
    open: AtomicUsize,
}

/// An open connection: counted from accept until its task ends.
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
}

impl Connection {
    fn open(shared: &Arc<Shared>) -> Connection {
        shared.open.fetch_add(1, Ordering::Relaxed);
        shared.metrics.opened();
        Connection {
            shared: Arc::clone(shared),
            state: Arc::new(ConnState::new(Instant::now())),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        self.shared.metrics.closed();
    }
}

fn log_end(result: hyper::Result<()>) {
    if let Err(e) = result {
        tracing::debug!("HTTP connection closed: {e}");
    }
}

/// Where a connection is between requests (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head = 0,
    Busy = 1,
    Idle = 2,
}

/// A connection's phase and since when, shared by its stream, its service and its bodies (all
/// used by the connection's own task).
#[derive(Debug)]
struct ConnState {
    opened: Instant,
    /// `milliseconds since opened << 2 | phase`: one word, so the two never disagree.
    phase: AtomicU64,
    /// Set when the current request's body missed its deadline.
    body_timed_out: AtomicBool,
}

impl ConnState {
    fn new(opened: Instant) -> ConnState {
        ConnState {
            opened,
            phase: AtomicU64::new(Phase::Head as u64),
            body_timed_out: AtomicBool::new(false),
        }
    }

    /// The phase, and when it began.
    fn get(&self) -> (Phase, Instant) {
        let word = self.phase.load(Ordering::Relaxed);
        let phase = match word & 3 {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        };
        (phase, self.opened + Duration::from_millis(word >> 2))
    }

    /// Enters `phase` now.
    fn set(&self, phase: Phase) {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.phase.store(
            (millis.min(u64::MAX >> 2) << 2) | phase as u64,
            Ordering::Relaxed,
        );
    }
}

/// The connection's TCP stream, failing a read or write that would wait past its phase's
/// deadline (or, while the server stops, any read outside a request).
#[derive(Debug)]
struct TimedStream {
    stream: TcpStream,
    conn: Arc<ConnState>,
    shared: Arc<Shared>,
    /// Armed for the current phase's deadline whenever the stream waits.
    timer: Pin<Box<Sleep>>,
}

impl TimedStream {
    /// When the phase runs out and which timer that is; `None` while a request is served.
    fn deadline(&self) -> Option<(Instant, HttpTimeout)> {
        let (phase, since) = self.conn.get();
        match phase {
            Phase::Head => Some((since + self.shared.header_timeout, HttpTimeout::Header)),
            Phase::Idle => Some((since + self.shared.idle_timeout, HttpTimeout::Idle)),
            Phase::Busy => None,
        }
    }

    /// Called when the stream would wait: the error that ends the connection once the phase's
    /// deadline has passed, else `Pending` with the timer armed to wake the connection by then.
    ///
    /// The timer is only a wake-up: it may fire early (then the deadline is looked at again and
    /// the timer armed anew), so a kept-alive connection under load moves it only when it fires,
    /// not at every request. While a request is served there is no deadline, but a wake-up stays
    /// armed within the idle timeout: hyper does not read again by itself when the response
    /// ends, and that wake-up is when an idle connection's own deadline gets looked at.
    fn poll_expired(&mut self, cx: &mut Context<'_>, reading: bool) -> Poll<io::Error> {
        let phase = self.deadline();
        if phase.is_some() && reading && self.shared.stopping.is_cancelled() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        let now = Instant::now();
        let wake_by = match phase {
            Some((deadline, kind)) if deadline <= now => {
                self.shared.metrics.timed_out(kind);
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("HTTP {} timeout", kind.label()),
                ));
            }
            Some((deadline, _)) => deadline,
            None => now + self.shared.idle_timeout,
        };
        let armed = self.timer.deadline();
        if armed > wake_by || armed <= now {
            self.timer.as_mut().reset(wake_by);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // The clock passed the new deadline meanwhile: look again at once.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // The first byte of the next request: its head has the header timeout.
                if buf.filled().len() > before && this.conn.get().0 == Phase::Idle {
                    this.conn.set(Phase::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_expired(cx, true).map(Err),
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.poll_expired(cx, false).map(Err),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_expired(cx, false).map(Err),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.poll_expired(cx, false).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves one request: the connection is busy from its head to the end of its response, and
/// its body must arrive within the body timeout (else 408, and the connection closes).
fn respond(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<TrackedBody>, Infallible>> {
    conn.set(Phase::Busy);
    conn.body_timed_out.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + shared.body_timeout;
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline,
            timer: None,
            conn: Arc::clone(&conn),
        })
    });
    let router = shared.router.clone();
    async move {
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let response = if conn.body_timed_out.load(Ordering::Relaxed) {
            shared.metrics.timed_out(HttpTimeout::Body);
            tracing::debug!("HTTP request body timed out");
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "request body timed out\n",
            )
                .into_response()
        } else {
            response
        };
        Ok(response.map(|inner| TrackedBody { inner, conn }))
    }
}

/// A request body that fails once its deadline has passed.
#[derive(Debug)]
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Made the first time the body has to wait (most bodies arrive with their head).
    timer: Option<Pin<Box<Sleep>>>,
    conn: Arc<ConnState>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(io::Error::other)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        this.conn.body_timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request body timed out",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body whose end (hyper drops it once written) makes the connection idle.
#[derive(Debug)]
struct TrackedBody {
    inner: Body,
    conn: Arc<ConnState>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.conn.get().0 == Phase::Busy {
            self.conn.set(Phase::Idle);
        }
    }
}

/// Failed accepts since the last one that succeeded, logged once.
#[derive(Debug, Default)]
struct AcceptTrouble {
    failures: u64,
    pause: Duration,
}

impl AcceptTrouble {
    /// Counts a failure; returns how long to pause before the next accept.
    fn failed(&mut self, e: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                "HTTP: accept failed, pausing before retrying (logged once until an accept succeeds): {e}"
            );
            self.pause = ACCEPT_PAUSE;
        } else {
            self.pause = (self.pause * 2).min(MAX_ACCEPT_PAUSE);
        }
        self.failures += 1;
        self.pause
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "HTTP: accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// A failure of one connection before it was accepted: the next accept is unaffected.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `configured`, lowered to what the file descriptor limit leaves for connections; logged.
fn connection_cap(configured: usize) -> usize {
    let soft = fd_soft_limit();
    let cap = cap_for(configured, soft);
    match soft {
        Some(soft) if cap < configured => tracing::warn!(
            max_connections = cap,
            configured,
            fd_soft_limit = soft,
            "HTTP: max_connections lowered to the file descriptor limit less a reserve for files \
             and outbound connections (raise `ulimit -n` for more)"
        ),
        _ => tracing::info!(
            max_connections = cap,
            fd_soft_limit = soft.map_or_else(|| "unknown".to_owned(), |soft| soft.to_string()),
            "HTTP: connections capped"
        ),
    }
    cap
}

/// The file descriptors kept from connections when the soft limit is `soft`: the store, the
/// plugins folder, outbound calls to WeChat and for plugins.
fn fd_reserve(soft: u64) -> u64 {
    (soft / 4).max(64)
}

/// `configured`, at most the soft limit less its reserve (and at least one).
fn cap_for(configured: usize, soft: Option<u64>) -> usize {
    match soft {
        Some(soft) => {
            let room = usize::try_from(soft.saturating_sub(fd_reserve(soft))).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
        None => configured,
    }
}

/// The process's soft limit of open files (Linux: `/proc/self/limits`; elsewhere unknown).
fn fd_soft_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| soft_nofile(&limits))
}

/// The soft `Max open files` of a `/proc/<pid>/limits` text (`None` when unlimited).
fn soft_nofile(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_of_file_descriptors() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_nofile(limits), Some(1024));
        assert_eq!(
            soft_nofile(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(soft_nofile("nothing here"), None);
        assert_eq!(cap_for(10_000, Some(1024)), 768);
        assert_eq!(cap_for(10_000, Some(256)), 192);
        assert_eq!(cap_for(10_000, Some(65_536)), 10_000);
        assert_eq!(cap_for(100, Some(1024)), 100);
        assert_eq!(cap_for(10_000, Some(10)), 1);
        assert_eq!(cap_for(10_000, None), 10_000);
    }

    #[test]
    fn the_phase_and_its_start_share_one_word() {
        let opened = Instant::now() - Duration::from_secs(3);
        let conn = ConnState::new(opened);
        assert_eq!(conn.get(), (Phase::Head, opened));
        conn.set(Phase::Idle);
        let (phase, since) = conn.get();
        assert_eq!(phase, Phase::Idle);
        assert!(since >= opened + Duration::from_millis(2_999), "{since:?}");
        conn.set(Phase::Busy);
        assert_eq!(conn.get().0, Phase::Busy);
    }

    #[test]
    fn accept_failures_back_off_up_to_the_most() {
        let mut trouble = AcceptTrouble::default();
        let e = io::Error::from_raw_os_error(24);
        let pauses: Vec<Duration> = (0..8).map(|_| trouble.failed(&e)).collect();
        assert_eq!(pauses[0], ACCEPT_PAUSE);
        assert_eq!(pauses[1], ACCEPT_PAUSE * 2);
        assert_eq!(pauses[7], MAX_ACCEPT_PAUSE);
        trouble.recovered();
        assert_eq!(trouble.failed(&e), ACCEPT_PAUSE);
        assert!(!is_connection_error(&e));
        assert!(is_connection_error(
            &io::ErrorKind::ConnectionAborted.into()
        ));
    }
}
