//! TLS on the edge: HTTPS and WSS with a certificate the client trusts,
//! nothing in plain text on the same port; and an ops listener that has
//! `/metrics` while the public one no longer does.

mod common;

use std::sync::Arc;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A free port for the ops listener, found now.
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TlsServer::start(dir.path(), false, |cfg| cfg.ops_listen = Some(ops)).await;
    let (https, url, port, cert) = (&server.https, &server.url, server.port, &server.cert);
    // Plain HTTP on the TLS port gets nowhere.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_err());
    // /metrics is on the ops listener, not the public one.
    let r = https.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let metrics = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("parley_"), "{metrics}");

    let (_, token) = server.user("alice").await;
    let token = token.as_str();

    // WSS: a heartbeat and a bad frame over the encrypted socket.
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{port}/v1/ws?token={token}"), tls)
            .await
            .unwrap();
    ws.send(Message::Text(r#"{"type":"nonsense"}"#.into()))
        .await
        .unwrap();
    let frame = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(frame["code"], "bad_request");
    drop(ws);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_kept_off_the_public_listener() {
    // Served by default (the client contract lists it)...
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        public_metrics: parley::Config::default().public_metrics,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let r = reqwest::get(format!("{}/metrics", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
    // ...and nowhere public when asked.
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        public_metrics: false,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let r = reqwest::get(format!("{}/metrics", s.url)).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("{}/healthz", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
