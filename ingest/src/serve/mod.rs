//! The accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2 with
//! WebSocket upgrades, and a graceful stop, with what axum's own `serve`
//! lacks: a cap on open connections and on those of one client address,
//! a deadline from accept to the first request's headers (TLS and the
//! HTTP/2 preface included), an idle timeout for connections with nothing
//! in flight, HTTP/2 keep-alive pings, and a minimum rate for request
//! bodies.
//!
//! Layout: `mod.rs` the listener and the connection task; `deadline.rs`
//! the per-connection deadlines and the paced body; `per_ip.rs` the cap
//! per client address.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use parley_engines::telemetry::emit;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::internal_events::{EdgeTrouble, Limit, LimitHit};
use crate::limits::Limits;

mod deadline;
mod per_ip;

pub use deadline::{Activity, Expired, MinRate};
pub use per_ip::PerIp;

/// How a listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// From accept to the first request's headers (TLS handshake and
    /// HTTP/2 preface included), and for each later request's headers.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive pings: how often, and how long an answer may take.
    pub ping_every: Duration,
    /// The slowest a request body may come.
    pub body: MinRate,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Open connections per client address.
    pub per_ip: PerIp,
}

impl ServeOptions {
    /// A plain listener with `limits`' deadlines and caps.
    pub fn plain(limits: &Limits) -> ServeOptions {
        ServeOptions {
            tls: None,
            header_timeout: limits.header_timeout(),
            idle_timeout: limits.idle_timeout(),
            ping_every: limits.ping_every(),
            body: MinRate {
                grace: Duration::from_millis(limits.body_timeout_ms),
                bytes_per_sec: limits.body_min_bytes_per_sec,
            },
            max_connections: limits.connections,
            per_ip: PerIp::new(
                limits.connections_per_ip,
                limits.connections_per_ip_exempt_loopback,
            ),
        }
    }

    /// The same with TLS.
    pub fn with_tls(mut self, tls: Option<TlsAcceptor>) -> ServeOptions {
        self.tls = tls;
        self
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// A TLS acceptor from PEM files: the certificate chain, and its key
/// (PKCS#8, PKCS#1 or SEC1). HTTP/2 and HTTP/1.1 are offered by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    tls_acceptor_for(cert, key, &[b"h2", b"http/1.1"])
}

/// The same for another protocol: `alpn` names what it offers (MQTT
/// clients mostly offer none, which any server takes).
pub fn tls_acceptor_for(cert: &Path, key: &Path, alpn: &[&[u8]]) -> io::Result<TlsAcceptor> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut io::BufReader::new(std::fs::File::open(cert)?))
            .collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err(bad(format!("no certificate in {}", cert.display())));
    }
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut io::BufReader::new(std::fs::File::open(key)?))?
            .ok_or_else(|| bad(format!("no private key in {}", key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("certificate and key: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and gives open requests up to 10 s to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(opts.ping_every)
        .keep_alive_timeout(opts.ping_every);
    let graceful = GracefulShutdown::new();
    let body = opts.body;
    accept_loop(listener, &opts, shutdown, |tcp, peer, place| {
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new());
        let app = app.clone();
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let flight = seen.begin();
            let mut req = req.map(|b| deadline::min_rate(axum::body::Body::new(b), body));
            req.extensions_mut().insert(ConnectInfo(peer));
            let served = app.clone().oneshot(req);
            async move {
                let res = served.await?;
                Ok::<_, std::convert::Infallible>(res.map(|b| deadline::tracked(b, flight)))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = opts.tls.clone();
        let (first_by, idle) = (accepted + opts.header_timeout, opts.idle_timeout);
        tokio::spawn(async move {
            let _place = place;
            let served = async {
                match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(tls) => {
                        if let Some(stream) = handshake(&tls, tcp, first_by).await {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                    }
                }
            };
            tokio::select! {
                _ = served => {}
                why = activity.expired(first_by, idle) => expired(why),
            }
        });
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// A connection closed by its own deadline, counted.
fn expired(why: Expired) {
    emit(LimitHit {
        limit: match why {
            Expired::FirstRequest => Limit::FirstRequest,
            Expired::Idle => Limit::IdleConnection,
        },
    });
}

/// A request body ended for coming too slowly, counted.
fn slow_body() {
    emit(LimitHit {
        limit: Limit::SlowBody,
    });
}

/// A connection's places: under the listener's cap and its address's.
pub struct Place {
    _open: OwnedSemaphorePermit,
    _ip: Option<per_ip::IpPlace>,
}

/// Accepts on `listener` until `shutdown` resolves, within `opts`' caps
/// (a connection over one is closed at once), and hands each connection,
/// with its places, to `handle`.
pub async fn accept_loop(
    listener: TcpListener,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()>,
    mut handle: impl FnMut(TcpStream, SocketAddr, Place),
) {
    let open = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause, then go on.
                    emit(EdgeTrouble::AcceptFailed { error: &e });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            emit(LimitHit {
                limit: Limit::Connections,
            });
            continue;
        };
        let Some(ip) = opts.per_ip.admit(peer.ip()) else {
            emit(LimitHit {
                limit: Limit::ConnectionsPerIp,
            });
            continue;
        };
        let _ = tcp.set_nodelay(true);
        handle(
            tcp,
            peer,
            Place {
                _open: permit,
                _ip: ip,
            },
        );
    }
}

/// A TLS handshake finished by `deadline`; a failed or slow one is counted
/// and nothing is served.
pub async fn handshake(
    tls: &TlsAcceptor,
    tcp: TcpStream,
    deadline: Instant,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, tls.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(_)) | Err(_) => {
            emit(LimitHit {
                limit: Limit::TlsHandshake,
            });
            None
        }
    }
}
