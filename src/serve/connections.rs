//! Accepting connections with limits, so that slow or idle clients cannot take the server
//! down.
//!
//! Four defences, each against one way of starving the server:
//!
//! - **Header timeout** ([`Limits::header_timeout`]): a request's headers must arrive whole
//!   within this time, counted from when the server starts waiting for them — when the
//!   connection opens, and again after each response on a kept-alive connection. So it closes
//!   both a client that trickles partial headers (slowloris) and a connection left idle
//!   between requests. It is hyper's `header_read_timeout`; hyper only honours it with a timer,
//!   which `axum::serve` does not set (so there used to be no timeout at all).
//! - **Idle timeout** ([`Limits::idle_timeout`]): a connection on which no byte has moved
//!   either way for this long is dropped, even in the middle of a response — a client that
//!   asks for a blob and stops reading would otherwise hold its connection (and the file)
//!   forever, and a graceful shutdown, which waits for the response to finish, could not
//!   close it.
//! - **Connection limit** ([`Limits::max_connections`]): at most this many connections are
//!   served at once. It is capped below the process's open-file limit (`ulimit -n`), since a
//!   connection is a file descriptor and serving a blob opens one more.
//! - **Eviction instead of refusal**: when a connection arrives at the limit, the *oldest* one
//!   is asked to shut down gracefully (hyper closes it at once when it is idle or still
//!   waiting for headers, or right after the response it is sending), and the newcomer is
//!   served. Refusing newcomers, or not accepting them, would let a crowd of idle connections
//!   keep `/health` and every real client out until the timeout; evicting the oldest keeps the
//!   server answering. Should `accept` still fail for lack of descriptors, the oldest
//!   connection is evicted too before accepting again.
//!
//! HTTP/1.1 only, as `axum::serve` served it here (axum's `http2` feature is off).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};
use tokio_native_tls::TlsAcceptor;
use tower::ServiceExt;

/// How many connections, and how long a client may take to send a request's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed for a request's headers (and for a kept-alive connection's next request).
    pub header_timeout: Duration,
    /// Time a connection may go without moving a byte in either direction.
    pub idle_timeout: Duration,
    /// Connections served at once, before the cap from the open-file limit.
    pub max_connections: usize,
}

impl Limits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

    /// The connection limit actually used: `max_connections`, but at most half the soft
    /// open-file limit, leaving the other half for the files being served and the runtime.
    pub fn effective_max_connections(&self) -> usize {
        let by_files = open_file_limit().map_or(usize::MAX, |n| (n / 2).max(1));
        self.max_connections.clamp(1, by_files)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process, when there is one.
#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

/// The connections being served, oldest first, each with the sender that asks it to shut
/// down gracefully.
#[derive(Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Table {
    /// Asks the oldest connection to close; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        match self.open.pop_first() {
            Some((_, close)) => {
                let _ = close.send(());
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` completes, then lets
/// the requests under way finish (idle connections close at once).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max = limits.effective_max_connections();
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                    // accepted: make room, and try again shortly rather than spin.
                    let made_room = lock(&table).evict_oldest();
                    if !made_room && !is_transient(&e) {
                        eprintln!("cannot accept a connection: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (close_tx, close_rx) = oneshot::channel();
        let id = {
            let mut t = lock(&table);
            let id = t.next_id;
            t.next_id += 1;
            t.open.insert(id, close_tx);
            while t.open.len() > max && t.evict_oldest() {}
            id
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = Connection {
            http: http.clone(),
            close: close_rx,
            stop: stop_rx.clone(),
            limits,
        };
        let table = table.clone();
        let done = done_tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let (stream, progress) = Watched::new(stream);
                    connection.serve(stream, progress, service).await;
                }
                Some(acceptor) => connection.serve_tls(&acceptor, stream, service).await,
            }
            lock(&table).open.remove(&id);
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    // Every connection task holds a `done` sender: this returns when the last one ends.
    let _ = done_rx.recv().await;
}

/// One accepted connection, with what asks it to close.
struct Connection {
    http: Arc<hyper::server::conn::http1::Builder>,
    /// Eviction: the table asks the oldest connection to close.
    close: oneshot::Receiver<()>,
    /// Shutdown of the whole server.
    stop: watch::Receiver<bool>,
    limits: Limits,
}

/// What a TLS client's first byte is: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

impl Connection {
    /// The TLS handshake, then HTTP over it. The handshake counts against the header
    /// timeout and gives way to eviction and shutdown, so a client that never completes it
    /// holds its slot no longer than one that never sends its headers. A client speaking
    /// plain HTTP gets a `400` saying to use `https://` (as nginx does), not a reset.
    async fn serve_tls<S>(
        mut self,
        acceptor: &TlsAcceptor,
        stream: tokio::net::TcpStream,
        service: S,
    ) where
        S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Body> + Send,
        S::Future: Send,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let handshake = async {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(1) if first[0] == TLS_HANDSHAKE => {}
                Ok(1) => return refuse_plain_http(stream).await,
                _ => return None,
            }
            let (stream, progress) = Watched::new(stream);
            acceptor.accept(stream).await.ok().map(|s| (s, progress))
        };
        let closed = async {
            tokio::select! {
                _ = &mut self.close => {}
                _ = self.stop.wait_for(|stopped| *stopped) => {}
            }
        };
        let accepted = tokio::select! {
            accepted = tokio::time::timeout(self.limits.header_timeout, handshake) => accepted,
            () = closed => return,
        };
        if let Ok(Some((stream, progress))) = accepted {
            self.serve(stream, progress, service).await;
        }
    }

    /// HTTP/1.1 on `stream` until the client or the server closes it, the connection is
    /// evicted, or no byte moves for the idle timeout.
    async fn serve<I, S>(mut self, stream: I, progress: Progress, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Body> + Send,
        S::Future: Send,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let connection = self.http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle_timeout = self.limits.idle_timeout;
        let close = async {
            tokio::select! {
                _ = &mut self.close => {}
                _ = self.stop.wait_for(|stopped| *stopped) => {}
            }
        };
        let asked_to_close = tokio::select! {
            _ = connection.as_mut() => false,
            () = close => true,
            () = progress.stalled_for(idle_timeout) => false,
        };
        if asked_to_close {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                () = progress.stalled_for(idle_timeout) => {}
            }
        }
    }
}

/// Answers a plain-HTTP request on the TLS port with a `400` naming the scheme, then closes.
/// Returns `None`: there is no connection to serve.
async fn refuse_plain_http<T>(mut stream: tokio::net::TcpStream) -> Option<T> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = "this server speaks HTTPS: use https://\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    // Read what the client sent first: closing with unread bytes makes the kernel reset the
    // connection, and the client would see the reset instead of the answer.
    let mut request = [0u8; 8192];
    let _ = stream.read(&mut request).await;
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    None
}

/// A connection's stream, noting when a byte last moved in either direction.
struct Watched {
    inner: tokio::net::TcpStream,
    progress: Progress,
}

/// When a [`Watched`] stream last moved a byte.
#[derive(Clone)]
struct Progress {
    since: Instant,
    /// Milliseconds after `since`.
    last: Arc<AtomicU64>,
}

impl Watched {
    fn new(inner: tokio::net::TcpStream) -> (Watched, Progress) {
        let progress = Progress {
            since: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        };
        let watched = Watched {
            inner,
            progress: progress.clone(),
        };
        (watched, progress)
    }
}

impl Progress {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `idle`.
    async fn stalled_for(&self, idle: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_stays_below_the_open_file_limit() {
        let limits = Limits {
            max_connections: usize::MAX,
            ..Limits::default()
        };
        let effective = limits.effective_max_connections();
        if let Some(files) = open_file_limit() {
            assert!(
                effective <= files / 2,
                "{effective} connections, {files} files"
            );
        }
        assert!(effective >= 1);
    }
}
