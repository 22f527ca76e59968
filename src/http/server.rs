//! The HTTP server: hyper with timers, so that slow or idle clients cannot hold sockets forever.
//!
//! warp's own server sets no hyper timer, which leaves hyper's header-read timeout off: slowloris
//! sockets and trickled bodies would be held indefinitely. Here every connection gets:
//! - a header-read timeout, which in hyper also bounds the idle time between keep-alive requests;
//! - a bounded read buffer (huge headers get `431`);
//! - a body deadline, enforced in the handler ([`super::BODY_TIMEOUT`]);
//! - a slot from a connection cap: at the cap, accepting pauses and the kernel backlog absorbs bursts.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{filters, AppState};

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time allowed for a request's headers, and for an idle keep-alive connection.
    pub header_timeout: Duration,
    /// Time given to open connections to finish after a shutdown signal.
    pub grace: Duration,
}

impl ServerOptions {
    /// The defaults (and those of `otsd --max-connections` and `--header-timeout`).
    pub const DEFAULT: ServerOptions = ServerOptions {
        max_connections: 16_384,
        header_timeout: Duration::from_secs(5),
        grace: Duration::from_secs(10),
    };
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::DEFAULT
    }
}

/// Listen backlog. tokio's `TcpListener::bind` uses 128, which overflows under a burst of new
/// connections (the `ots` client opens one per request) and costs the client a 1 s SYN retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (host:port, names resolved) with [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address to bind")))
}

/// Largest read buffer per connection, which bounds the request head.
const MAX_BUF: usize = 16 * 1024;

/// Serves the API on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let routes = filters::routes(state);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => { accept_error(e).await; continue }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(warp::service(routes.clone()));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .max_buf_size(MAX_BUF)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting connections; letting open requests finish");
    if tokio::time::timeout(opts.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {:?}; closing them",
            opts.grace
        );
    }
}

async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    // Out of file descriptors and the like: back off instead of spinning.
    tracing::warn!("accept failed: {e}; pausing accepts for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
