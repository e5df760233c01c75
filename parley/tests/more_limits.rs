//! The limits docs/security.md lists that had no test of their own, each
//! met through the protocol: the per-user socket rates (receipts,
//! heartbeats, scrollback), invites per group, push subscriptions per
//! user, uploads per minute, a stalled upload, the listener's connection
//! cap and the MQTT CONNECT deadline. Each refusal is counted under its
//! `parley_limit_hits_total` label, and the server serves on.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The count of `limit` on the server's `/metrics`.
async fn hits(url: &str, limit: &str) -> f64 {
    metric(
        url,
        "parley_limit_hits_total",
        &format!("limit=\"{limit}\""),
    )
    .await
}

/// Reads until the server closes `tcp`; false if it is still open after
/// `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_heartbeats_and_scrollback_are_limited_per_user() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.receipts_per_sec = 1;
    cfg.limits.receipts_burst = 3;
    cfg.limits.heartbeats_per_sec = 1;
    cfg.limits.heartbeats_burst = 3;
    cfg.limits.history_per_sec = 1;
    cfg.limits.history_burst = 3;
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let cid = a.say(&bob.id, "m", "hello").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = b.expect("msg").await;
    let frames = [
        (
            "receipts",
            json!({"type": "receipt", "conversation_id": cid, "msg_id": m["msg_id"], "status": "delivered"}),
        ),
        ("heartbeats", json!({"type": "heartbeat", "active": true})),
        (
            "history",
            json!({"type": "history", "conversation_id": cid, "limit": 1}),
        ),
    ];
    for (limit, frame) in frames {
        let before = hits(&s.url, limit).await;
        // The burst goes through; the one after it is refused, once.
        for _ in 0..4 {
            b.send(frame.clone()).await;
        }
        let e = b.expect("error").await;
        assert_eq!(e["code"], "rate_limited", "{limit}: {e}");
        assert_eq!(hits(&s.url, limit).await - before, 1.0, "{limit}");
    }
    // The socket serves on: Bob still gets what Alice sends.
    a.say(&bob.id, "after", "still here").await;
    loop {
        let m = b.expect("msg").await;
        if m["body"]["text"] == "still here" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_push_subscriptions_and_uploads_are_capped() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.push_subscriptions_per_user = 2;
    cfg.limits.media_uploads_per_min = 2;
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;

    // 100 invites per group; the 101st is a conflict.
    let g = create_group(&s.url, &at, "club", &[&bob.id]).await;
    let invites = format!("{}/v1/groups/{g}/invites", s.url);
    for i in 0..100 {
        let (status, v) = call(Method::POST, &invites, &at, Some(json!({}))).await;
        assert_eq!(status, 201, "invite {i}: {v}");
    }
    let (status, v) = call(Method::POST, &invites, &at, Some(json!({}))).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("conflict")), "{v}");

    // Push subscriptions: the third is refused until one goes.
    let subs = format!("{}/v1/push/subscriptions", s.url);
    let sub = |t: &str| json!({"kind": "webhook", "token": t, "platform": "fcm"});
    let before = hits(&s.url, "push_subscriptions").await;
    let mut ids = Vec::new();
    for t in ["t1", "t2"] {
        let (status, v) = call(Method::POST, &subs, &at, Some(sub(t))).await;
        assert_eq!(status, 201, "{v}");
        ids.push(v["subscription_id"].as_str().unwrap().to_owned());
    }
    let (status, _) = call(Method::POST, &subs, &at, Some(sub("t3"))).await;
    assert_eq!(status, 409);
    assert_eq!(hits(&s.url, "push_subscriptions").await - before, 1.0);
    let one = format!("{subs}/{}", ids[0]);
    assert_eq!(call(Method::DELETE, &one, &at, None).await.0, 204);
    assert_eq!(call(Method::POST, &subs, &at, Some(sub("t3"))).await.0, 201);

    // Uploads: two a minute, the third is rate-limited.
    let before = hits(&s.url, "media_uploads").await;
    for i in 0..2 {
        let (status, v) = upload(&s.url, &at, "image/png", png_like(1_000, i)).await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = upload(&s.url, &at, "image/png", png_like(1_000, 9)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert_eq!(hits(&s.url, "media_uploads").await - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_off_and_stores_nothing() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.media_stall_ms = 300;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let before = hits(&s.url, "media_stall").await;
    let addr = s.url.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {at}\r\n\
         Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&png_like(100_000, 1)[..1_000]).await.unwrap();
    // Then nothing: answered (or closed) well before the body pace's 20 s.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stalled upload was not cut off");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || !answer.starts_with("HTTP/1.1 201"),
        "{answer}"
    );
    eventually("the stall counted", WAIT, || async {
        (hits(&s.url, "media_stall").await - before >= 1.0).then_some(())
    })
    .await;
    assert_eq!(files(&s.data_dir, "blobs"), 0, "nothing stored");
    // Others upload as before.
    let (status, _) = upload(&s.url, &at, "image/png", png_like(2_000, 2)).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_closes_connections_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.connections = 3;
    let s = Server::start_with(cfg).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The fourth is closed at accept, before it says anything.
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut fourth, Duration::from_secs(5)).await);
    // One of the three goes: a request is served again.
    drop(held.pop());
    let served = eventually("a place again", WAIT, || async {
        let r = reqwest::get(format!("{}/healthz", s.url)).await.ok()?;
        r.status().is_success().then_some(())
    });
    served.await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_connection_that_never_connects_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.header_timeout_ms = 300;
    let s = Server::start_with_mqtt(cfg).await;
    let port = s.mqtt_port.unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A CONNECT begun and never finished counts the same.
    let mut partial = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    partial.write_all(&[0x10, 0x20, 0x00, 0x04]).await.unwrap();
    for tcp in [&mut silent, &mut partial] {
        assert!(closed_within(tcp, Duration::from_secs(5)).await);
    }
    let r = reqwest::get(format!("{}/healthz", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_and_archived_conversations_are_capped_per_user() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.account_changes_per_min = 100_000;
    cfg.limits.account_changes_burst = 100_000;
    let s = Server::start_with(cfg).await;
    let alice = register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let me: u64 = alice.id.parse().unwrap();
    // Her side of a chat with anyone is hers to keep.
    let chat = |k: u64| format!("d:{me}:{}", me + k);
    let http = reqwest::Client::new();
    let put = |cid: String, what: &'static str| {
        let req = http
            .put(format!("{}/v1/conversations/{cid}/{what}", s.url))
            .bearer_auth(&at);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for what in ["mute", "archive"] {
        let before = hits(&s.url, "kept_conversations").await;
        for k in 1..=1_000 {
            assert_eq!(put(chat(k), what).await, 204, "{what} {k}");
        }
        assert_eq!(put(chat(1_001), what).await, 409, "{what} past the cap");
        assert_eq!(hits(&s.url, "kept_conversations").await - before, 1.0);
        // One already kept is kept again, not refused.
        assert_eq!(put(chat(7), what).await, 204);
    }
}
