//! TLS on the edge: HTTPS and WSS with a certificate the client trusts,
//! nothing in plain text on the same port; and an ops listener that has
//! `/metrics` while the public one no longer does.

mod common;

use std::sync::Arc;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.tls_cert = Some(cert_path);
    cfg.tls_key = Some(key_path);
    // A free port for the ops listener, found now.
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    cfg.ops_listen = Some(ops);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        parley::up(&cfg, listener, async move {
            let _ = stopped.await;
        })
        .await
    });

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    eventually("ready over https", WAIT, || async {
        let r = https.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
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

    let r = https
        .post(format!("{url}/v1/users"))
        .json(&json!({"username": "alice", "password": "password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = https
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"username": "alice", "password": "password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap();

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

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
