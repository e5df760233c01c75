//! The accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2 with
//! WebSocket upgrades, a deadline for reading request headers (and for
//! the TLS handshake), a cap on open connections, and a graceful stop.
//! axum's own `serve` has none of the first three.

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
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::internal_events::{EdgeTrouble, Limit, LimitHit};

/// How a listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Time to finish the TLS handshake and to send a request's headers.
    pub header_timeout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
}

impl ServeOptions {
    pub fn plain(header_timeout: Duration, max_connections: usize) -> ServeOptions {
        ServeOptions {
            tls: None,
            header_timeout,
            max_connections,
        }
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
    let graceful = GracefulShutdown::new();
    let deadline = opts.header_timeout;
    accept_loop(
        listener,
        opts.max_connections,
        shutdown,
        |tcp, peer, place| {
            let app = app.clone();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = opts.tls.clone();
            tokio::spawn(async move {
                let _place = place;
                match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(tls) => {
                        if let Some(stream) = handshake(&tls, tcp, deadline).await {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                    }
                }
            });
        },
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// Accepts on `listener` until `shutdown` resolves, at most
/// `max_connections` open at once (more are closed at once), and hands
/// each connection, with its place under the cap, to `handle`.
pub async fn accept_loop(
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
    mut handle: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    let open = Arc::new(Semaphore::new(max_connections.max(1)));
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
        let Ok(place) = open.clone().try_acquire_owned() else {
            emit(LimitHit {
                limit: Limit::Connections,
            });
            continue;
        };
        let _ = tcp.set_nodelay(true);
        handle(tcp, peer, place);
    }
}

/// A TLS handshake within `deadline`; a failed or slow one is counted and
/// nothing is served.
pub async fn handshake(
    tls: &TlsAcceptor,
    tcp: TcpStream,
    deadline: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(deadline, tls.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(_)) | Err(_) => {
            emit(LimitHit {
                limit: Limit::TlsHandshake,
            });
            None
        }
    }
}
