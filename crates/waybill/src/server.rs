//! The HTTP listener: its own accept loop over hyper's HTTP/1 connections, so that no
//! client can hold the hub or its shutdown.
//!
//! - **Header timeout**: a request's head must arrive within `header_timeout` of its first
//!   byte (of the accept, for a connection's first request); a half-sent head is closed.
//! - **Body timeout**: a request's body must arrive within `body_timeout` of its head; the
//!   handler then sees a body error (ingest answers it as a body it could not read).
//! - **Idle timeout**: a kept-alive connection with no request for `idle_timeout` is closed;
//!   so is one whose response the client stops reading for that long.
//! - **Connection cap**: at most `max_connections` (and never more than the open-file limit
//!   leaves room for) are served at once. Over the cap, a new connection is accepted,
//!   answered `503` with `Retry-After: 1` (with TLS: nothing, answering would take a
//!   handshake) and closed at once, and counted
//!   (`waybill_http_connections_refused_total`): accepting keeps the kernel's backlog
//!   from filling with connections nobody serves (whose clients would wait for a TCP
//!   timeout), and a client learns at once that it should come back.
//! - **TLS** (with an acceptor, see [`crate::tls`]): the handshake happens in the
//!   connection's task, under the connection cap, and must end within `header_timeout`
//!   of the accept (the first request's head is still owed from the accept). A connection
//!   whose first byte is not a TLS handshake record is answered `400` in plain text
//!   (`this port speaks HTTPS`) and closed.
//! - **Graceful shutdown**: when `shutdown` resolves, the listener closes, idle connections
//!   close, requests in flight get up to `shutdown_grace` to finish; connections still
//!   open then are dropped.
//!
//! Place in the flow: in front of the API router. Never does: business logic.

use axum::body::{Bytes, HttpBody};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use waybill_engine::Metrics;

/// The listener's limits (`[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a request's head may take to arrive, from its first byte (from the accept
    /// for a connection's first request).
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive, from its head.
    pub body_timeout: Duration,
    /// Longest a connection may stay open with no request (or with a response the client
    /// does not read).
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest the shutdown waits for requests in flight before dropping their connections.
    pub shutdown_grace: Duration,
}

/// The answer to a connection over the cap, written before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 29\r\n\r\ntoo many connections; retry\n";

/// The answer to plain HTTP on a TLS listener, written before it is closed.
const NOT_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 42\r\n\r\nthis port speaks HTTPS: use https:// URLs\n";

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `app` on `listener` with `limits` until `shutdown` resolves, then shuts down
/// gracefully (see the module's documentation). With `tls`, every connection is a TLS
/// connection. Counts into `stats.http`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    stats: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut last_accept_error: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let (app, stats, closing, tls) =
                            (app.clone(), stats.clone(), closing_rx.clone(), tls.clone());
                        conns.spawn(async move {
                            stats.http.open.fetch_add(1, Ordering::Relaxed);
                            serve_connection(stream, peer, app, limits, tls, &stats, closing).await;
                            stats.http.open.fetch_sub(1, Ordering::Relaxed);
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        stats.http.refused.fetch_add(1, Ordering::Relaxed);
                        // A fresh socket's send buffer is empty: this never blocks. A TLS
                        // client could not read a plain answer: it sees the close.
                        if tls.is_none() {
                            let _ = stream.try_write(REFUSED);
                        }
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or a connection reset before
                    // it was accepted: log once a second at most and go on; a short pause
                    // lets connections close instead of spinning on the error.
                    let now = Instant::now();
                    if last_accept_error.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, open = stats.http.open.load(Ordering::Relaxed), "cannot accept a connection");
                        last_accept_error = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let in_flight = conns.len();
    if in_flight > 0 {
        tracing::info!(
            connections = in_flight,
            grace = ?limits.shutdown_grace,
            "waiting for requests in flight"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = conns.len();
        tracing::warn!(
            connections = left,
            "shutdown grace period over: dropping the connections still open"
        );
        for _ in 0..left {
            stats.http.timeouts.inc(&["shutdown"]);
        }
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        // Aborted tasks did not count themselves out.
        stats.http.open.store(0, Ordering::Relaxed);
    }
    Ok(())
}

/// One connection: the TLS handshake if any, then [`serve_http`].
async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    stats: &Arc<Metrics>,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let Some(acceptor) = tls else {
        return serve_http(stream, activity, peer, app, limits, stats, closing).await;
    };
    // The handshake counts against the first request's head: both are owed within
    // `header_timeout` of the accept.
    let deadline = activity.deadline(&limits);
    let handshake = async {
        let mut stream = stream;
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await?;
        if n == 1 && first[0] != TLS_HANDSHAKE {
            // Plain HTTP (or anything else): say so, in a form a browser or curl shows,
            // then read what the client sent (for a second at most) so that closing with
            // unread bytes does not reset the connection before the answer is read.
            stream.write_all(NOT_TLS).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            })
            .await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a TLS handshake: answered 400",
            ));
        }
        acceptor.accept(stream).await
    };
    let tls = tokio::select! {
        done = tokio::time::timeout_at(deadline, handshake) => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                stats.http.timeouts.inc(&["header"]);
                tracing::debug!(%peer, "closing a connection: TLS handshake timeout");
                return;
            }
        },
        // Shutting down: a handshake in progress has no request in flight yet.
        _ = closing.wait_for(|c| *c) => return,
    };
    serve_http(tls, activity, peer, app, limits, stats, closing).await;
}

/// One connection's HTTP: hyper's HTTP/1 state machine, watched for the timeouts and the
/// shutdown.
async fn serve_http<S>(
    stream: S,
    activity: Arc<Activity>,
    peer: std::net::SocketAddr,
    app: Router,
    limits: Limits,
    stats: &Arc<Metrics>,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let (act, body_stats) = (activity.clone(), stats.clone());
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = act.begin_request();
        let mut req = req.map(|body| Deadline::new(body, limits.body_timeout, body_stats.clone()));
        // The peer, for handlers that record where a request came from (the audit trail).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await;
            drop(busy);
            resp
        }
    });
    // No hyper timer: the timeouts are this module's (hyper's header timeout would also
    // close kept-alive connections after `header_timeout`, not `idle_timeout`).
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    // Re-check at least this often: a connection's state changes between checks.
    let tick = limits
        .header_timeout
        .min(limits.idle_timeout)
        .max(Duration::from_millis(200))
        / 2;
    loop {
        if !draining && *closing.borrow() {
            conn.as_mut().graceful_shutdown();
            draining = true;
        }
        let next = activity.deadline(&limits).min(Instant::now() + tick);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !draining => {
                if changed.is_err() {
                    // The listener is gone: shut down as if told to.
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
            () = tokio::time::sleep_until(next) => {
                if let Some(kind) = activity.expired(&limits) {
                    stats.http.timeouts.inc(&[kind]);
                    tracing::debug!(kind, "closing a connection: timeout");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, for its timeouts. Times are milliseconds since `start`.
struct Activity {
    start: Instant,
    /// Last byte read or written.
    last_io: AtomicU64,
    /// First byte of a request head not yet handed to the router, plus one (0: none).
    head_since: AtomicU64,
    /// Requests in the router now.
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            // A new connection owes its first request's head from the accept on.
            head_since: AtomicU64::new(1),
            busy: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.busy.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request's head was read: it is the router's now, until the guard is dropped.
    fn begin_request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection times out if nothing changes (far away while a request is in
    /// the router: the body has its own deadline, a handler none).
    fn deadline(&self, limits: &Limits) -> Instant {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Instant::now() + limits.idle_timeout;
        }
        match self.head_since.load(Ordering::Relaxed) {
            0 => self.at(self.last_io.load(Ordering::Relaxed)) + limits.idle_timeout,
            h => self.at(h - 1) + limits.header_timeout,
        }
    }

    /// Which timeout has passed, if one has.
    fn expired(&self, limits: &Limits) -> Option<&'static str> {
        if self.busy.load(Ordering::Relaxed) > 0 || Instant::now() < self.deadline(limits) {
            return None;
        }
        Some(if self.head_since.load(Ordering::Relaxed) == 0 {
            "idle"
        } else {
            "header"
        })
    }
}

/// A request in the router; dropped when its response is ready.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream (TCP, or TLS over TCP) that notes its reads and writes in the connection's
/// [`Activity`]: with TLS, those of the requests and responses, not of TLS records.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline has passed without it ending.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
    stats: Arc<Metrics>,
    expired: bool,
}

impl Deadline {
    fn new(inner: Incoming, within: Duration, stats: Arc<Metrics>) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
            stats,
            expired: false,
        }
    }
}

/// The error a late body ends with.
#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive within the body timeout")
    }
}

impl std::error::Error for BodyTimeout {}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.expired {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            self.stats.http.timeouts.inc(&["body"]);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft limit of open files to the hard limit where the system allows it;
/// returns the soft limit in force afterwards (`None`: unlimited or unknown).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(
                from = limit.current,
                to = limit.maximum,
                "raised the open-file limit to the hard limit"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                soft = limit.current,
                hard = limit.maximum,
                "cannot raise the open-file limit"
            ),
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The connections the listener may serve under an open-file limit of `nofile`: the
/// configured cap, lowered to leave a quarter of the limit (at least 64, at most 1024
/// descriptors) to the store, the sinks and the rest of the process.
pub fn connection_cap(max_connections: usize, nofile: Option<u64>) -> usize {
    let Some(n) = nofile else {
        return max_connections.max(1);
    };
    let reserve = (n / 4).clamp(64, 1024);
    let room = usize::try_from(n.saturating_sub(reserve)).unwrap_or(usize::MAX);
    max_connections.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_rest_of_the_process() {
        assert_eq!(connection_cap(4096, Some(512)), 384);
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(4096, Some(1 << 20)), 4096);
        assert_eq!(connection_cap(4096, None), 4096);
        assert_eq!(connection_cap(4096, Some(10)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_owes_its_head_then_idles_between_requests() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
            shutdown_grace: Duration::from_secs(1),
        };
        let a = Arc::new(Activity::new());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(a.expired(&limits), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            a.expired(&limits),
            Some("header"),
            "nothing sent since the accept"
        );

        let a = Arc::new(Activity::new());
        a.read();
        let busy = a.begin_request();
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(
            a.expired(&limits),
            None,
            "a request in the router never times out here"
        );
        drop(busy);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(a.expired(&limits), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.expired(&limits), Some("idle"));

        let a = Arc::new(Activity::new());
        drop(a.begin_request());
        tokio::time::advance(Duration::from_secs(30)).await;
        a.read();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            a.expired(&limits),
            Some("header"),
            "half a head after idling"
        );
    }
}
