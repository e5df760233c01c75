//! Web Push through the protocol, to a push service this test runs in the
//! browser's place: a user who is away gets one notification per burst,
//! encrypted for the browser's keys alone (RFC 8291) and signed with the
//! deployment's VAPID key (RFC 8292) for the push service's origin; a
//! subscription the push service calls gone is removed.

mod common;

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use web_push_native::p256::elliptic_curve::rand_core::OsRng;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::p256::SecretKey;
use web_push_native::Auth;

const SUBJECT: &str = "mailto:ops@example.com";

/// What the push service got.
struct Push {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service: `/push/{id}` takes a notification (201), `/gone/{id}`
/// answers 410 as for a browser that unsubscribed.
async fn push_service() -> (SocketAddr, mpsc::UnboundedReceiver<Push>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/push/{id}",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Push {
                        headers,
                        body: body.to_vec(),
                    });
                    StatusCode::CREATED
                }
            }),
        )
        .route(
            "/gone/{id}",
            axum::routing::post(|| async { StatusCode::GONE }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

/// A browser's subscription keys: its P-256 key and auth secret.
struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        Browser {
            secret: SecretKey::random(&mut OsRng),
            auth: rand::random(),
        }
    }

    fn subscription(&self, endpoint: &str) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({"kind": "webpush", "endpoint": endpoint, "keys": {
            "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()),
            "auth": URL_SAFE_NO_PAD.encode(self.auth),
        }})
    }

    fn decrypt(&self, body: &[u8]) -> Value {
        let plain =
            web_push_native::decrypt(body.to_vec(), &self.secret, Auth::from_slice(&self.auth))
                .expect("encrypted for this browser");
        serde_json::from_slice(&plain).unwrap()
    }
}

/// Web Push on, looked at every 50 ms, and http endpoints taken (the
/// test's push service is plain http).
fn push_config(dir: &std::path::Path) -> parley::Config {
    let mut cfg = config(dir);
    cfg.notify.webpush_subject = Some(SUBJECT.into());
    cfg.notify.every_ms = 50;
    cfg.limits.push_http_endpoints = true;
    cfg
}

async fn subscribe(url: &str, token: &str, sub: Value) -> u16 {
    let (status, v) = call(
        reqwest::Method::POST,
        &format!("{url}/v1/push/subscriptions"),
        token,
        Some(sub),
    )
    .await;
    assert!(status == 201 || status >= 400, "{v}");
    status
}

/// The claims of a VAPID `Authorization` header, if its token verifies
/// with the key it names, which must be `public` (base64url point).
fn vapid_claims(header: &str, public: &str, origin: &str) -> Value {
    let rest = header.strip_prefix("vapid ").expect("the vapid scheme");
    let mut t = None;
    let mut k = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("k", v)) => k = Some(v.to_owned()),
            _ => {}
        }
    }
    assert_eq!(
        k.as_deref(),
        Some(public),
        "k is the key browsers subscribe with"
    );
    let point = URL_SAFE_NO_PAD.decode(public).unwrap();
    assert_eq!(
        (point.len(), point[0]),
        (65, 4),
        "an uncompressed P-256 point"
    );
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..33]),
        &URL_SAFE_NO_PAD.encode(&point[33..]),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[origin]);
    v.set_required_spec_claims(&["exp", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(&t.expect("a token"), &key, &v)
        .expect("a VAPID token signed with that key, for this origin")
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_browsers_get_one_encrypted_signed_push_per_burst_and_gone_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (push_addr, mut pushes) = push_service().await;
    let mut cfg = push_config(dir.path());
    cfg.notify.collapse_ms = 1_000;
    cfg.notify.webpush_private_endpoints = true;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;

    // The key browsers subscribe with is public, and the same on each ask.
    let key = reqwest::get(format!("{}/v1/push/vapid", s.url))
        .await
        .unwrap();
    assert_eq!(key.status(), 200);
    let public = key.json::<Value>().await.unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let again: Value = reqwest::get(format!("{}/v1/push/vapid", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["public_key"], public.as_str());

    let browser = Browser::new();
    let endpoint = format!("http://{push_addr}/push/bob-browser");
    assert_eq!(
        subscribe(&s.url, &bt, browser.subscription(&endpoint)).await,
        201
    );
    let gone = Browser::new().subscription(&format!("http://{push_addr}/gone/carol"));
    assert_eq!(subscribe(&s.url, &ct, gone).await, 201);
    // Bad keys are refused and nothing is stored.
    let mut bad = browser.subscription(&endpoint);
    bad["keys"]["p256dh"] = json!("AAAA");
    assert_eq!(subscribe(&s.url, &bt, bad).await, 400);

    // Bob is away: a burst of three gives one push, for his browser only.
    let mut a = Client::connect(&s.url, &at).await;
    for i in 0..3 {
        a.say(&bob.id, &format!("w{i}"), &format!("secret plan {i}"))
            .await;
    }
    let push = tokio::time::timeout(WAIT, pushes.recv())
        .await
        .expect("a push in time")
        .unwrap();
    let h = |k: &str| push.headers[k].to_str().unwrap().to_owned();
    assert_eq!(h("content-encoding"), "aes128gcm");
    assert!(h("ttl").parse::<u64>().unwrap() > 0);
    let claims = vapid_claims(&h("authorization"), &public, &format!("http://{push_addr}"));
    assert_eq!(claims["sub"], SUBJECT);
    let exp = claims["exp"].as_u64().unwrap();
    let now = parley_schemas::ids::now_ms() / 1000;
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "RFC 8292: at most a day"
    );
    // The push service cannot read it; the browser can.
    assert!(!push.body.windows(6).any(|w| w == b"secret"));
    assert!(!push.body.windows(5).any(|w| w == b"count"));
    let v = browser.decrypt(&push.body);
    assert_eq!(v["count"], 3, "{v}");
    assert_eq!(v["conversation_id"], direct(&alice.id, &bob.id).as_str());
    assert_eq!(
        (v["title"].as_str(), v["body"].as_str()),
        (Some("Parley"), Some("3 new messages"))
    );
    assert!(v.get("token").is_none(), "{v}");
    // Another browser's keys do not open it.
    let other = Browser::new();
    assert!(web_push_native::decrypt(
        push.body.clone(),
        &other.secret,
        Auth::from_slice(&other.auth)
    )
    .is_err());

    // Carol's push service says her subscription is gone: it is removed.
    a.say(&carol.id, "c1", "hello carol").await;
    eventually("carol's dead subscription removed", WAIT, || async {
        let (_, list) = get(&s.url, &ct, "/v1/push/subscriptions").await;
        list["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_on_the_deployments_own_network_is_refused_and_never_called() {
    let dir = tempfile::tempdir().unwrap();
    let (push_addr, mut pushes) = push_service().await;
    // The edge takes http endpoints (as a test's would be), but not ones
    // on addresses that are not public, however they are written.
    let s = Server::start_with(push_config(dir.path())).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let port = push_addr.port();
    for host in [
        "127.0.0.1",
        "localhost",
        // Non-canonical IPv4: hex, decimal, short and octal forms.
        "0x7f000001",
        "2130706433",
        "127.1",
        "0177.0.0.1",
        "0x7f.1",
        "0.0.0.0",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "10.0.0.1",
        "100.64.0.1",
        "198.18.0.1",
        "169.254.169.254",
        "0xa9fea9fe",
        "[fe80::1]",
        "[fd00::1]",
    ] {
        for scheme in ["http", "https"] {
            let sub = Browser::new().subscription(&format!("{scheme}://{host}:{port}/push/bob"));
            assert_eq!(subscribe(&s.url, &bt, sub).await, 400, "{scheme}://{host}");
        }
    }
    let (_, list) = get(&s.url, &bt, "/v1/push/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]), "{list}");
    // A message to Bob, away: nothing reaches the service on loopback.
    let mut a = Client::connect(&s.url, &at).await;
    a.say(&bob.id, "x", "to the inside").await;
    assert!(
        pushes.try_recv().is_err(),
        "the private endpoint was called"
    );
    s.stop().await;
}
