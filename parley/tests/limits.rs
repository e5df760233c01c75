//! Limits on what one client can send or hold open, met through the
//! protocol: a clear error, nothing changed, and the socket (or account)
//! usable again afterwards.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_3000_sends_meets_the_limit_appends_nothing_over_it_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // The default burst, refilled slowly: what passes does not depend on
    // how fast this disk syncs the 2,000 that do.
    cfg.limits.sends_per_sec = 5;
    assert_eq!(cfg.limits.sends_burst, 2_000);
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    for i in 0..3_000 {
        a.send(json!({"type": "send", "client_msg_id": format!("f-{i}"), "to": {"user": bob.id}, "body": {"text": "flood"}}))
            .await;
    }
    let (mut acked, mut limited) = (0, 0);
    while acked + limited < 3_000 {
        let f = a.next().await;
        match f["type"].as_str() {
            Some("ack") => acked += 1,
            Some("error") => {
                assert_eq!(f["code"], "rate_limited", "{f}");
                assert!(f["ref"].as_str().unwrap().starts_with("f-"));
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(limited >= 500, "the burst met the limit: {acked} acked");
    assert!(acked >= 2_000, "the burst allowance passed: {acked}");
    assert!(metric(&s.url, "parley_limit_hits_total", "limit=\"sends\"").await >= limited as f64);

    // Only what was acked reached Bob.
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    b.send(json!({"type": "sync"})).await;
    for _ in 0..acked {
        b.expect("msg").await;
    }
    assert!(b.quiet("msg", Duration::from_millis(300)).await);

    // The same socket sends again once the bucket refills.
    // (A token comes back every 200 ms; a client would back off like this.)
    let mut tries = 0;
    let ack = loop {
        a.send(json!({"type": "send", "client_msg_id": "after", "to": {"user": bob.id}, "body": {"text": "calm"}}))
            .await;
        let f = a.next().await;
        if f["type"] == "ack" {
            break f;
        }
        assert_eq!(f["code"], "rate_limited");
        tries += 1;
        assert!(tries < 200, "still limited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ack["client_msg_id"], "after");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_and_sign_ins_are_limited_per_address_and_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.trust_forwarded_for = true;
    cfg.limits.sign_ups_per_hour_per_ip = 3;
    cfg.limits.sign_ins_per_min_per_account = 4;
    let s = Server::start_with(cfg).await;
    let http = reqwest::Client::new();
    let sign_up = |name: String, ip: &'static str| {
        http.post(format!("{}/v1/users", s.url))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": name, "password": "password-1"}))
            .send()
    };
    for i in 0..3 {
        let r = sign_up(format!("user{i}"), "203.0.113.7").await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = sign_up("user3".into(), "203.0.113.7").await.unwrap();
    assert_eq!(r.status(), 429);
    let retry = retry_after(&r);
    assert!(retry >= 1, "Retry-After {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "rate_limited");
    // Nothing was created: another address may take the name.
    let r = sign_up("user3".into(), "198.51.100.1").await.unwrap();
    assert_eq!(r.status(), 201);

    // Per account: wrong passwords and right ones count alike.
    let sign_in = |password: &'static str| {
        http.post(format!("{}/v1/sessions", s.url))
            .json(&json!({"username": "user0", "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(sign_in("wrong-password").await.unwrap().status(), 401);
    }
    assert_eq!(sign_in("password-1").await.unwrap().status(), 200);
    let r = sign_in("password-1").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_username_and_a_wrong_password_get_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for name in ["alice", "nobody-here"] {
        let r = http
            .post(format!("{}/v1/sessions", s.url))
            .json(&json!({"username": name, "password": "not-the-password"}))
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_checks_the_display_name_as_a_profile_change_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let http = reqwest::Client::new();
    for bad in ["   ", "a\u{7}bell", &"x".repeat(65)] {
        let r = http
            .post(format!("{}/v1/users", s.url))
            .json(&json!({"username": "dana", "password": "password-1", "display_name": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
    }
    // Nothing was taken by the refused attempts.
    register(&s.url, "dana").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_url_opens_a_websocket_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (token, _) = login(&s.url, "alice", None).await;
    let r = reqwest::get(format!("{}/v1/users/me?token={token}", s.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(get(&s.url, &token, "/v1/users/me").await.0, 200);
    let mut c = Client::connect(&s.url, &token).await;
    c.send(json!({"type": "heartbeat", "active": true})).await;
    assert!(c.quiet("error", Duration::from_millis(100)).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_per_user_are_capped_at_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.sockets_per_user = 2;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (token, _) = login(&s.url, "alice", None).await;
    let first = Client::connect(&s.url, &token).await;
    let _second = Client::connect(&s.url, &token).await;
    let url = format!("{}/v1/ws?token={token}", s.url.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
        }
        other => panic!("a third socket: {:?}", other.map(|_| ())),
    }
    // A closed one frees its place.
    first.close().await;
    eventually("a place again", WAIT, || async {
        tokio_tungstenite::connect_async(url.as_str()).await.ok()
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.write_timeout_ms = 300;
    cfg.limits.sends_per_sec = 10_000;
    cfg.limits.sends_burst = 10_000;
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let (bob_token, _) = login(&s.url, "bob", None).await;
    let mut slow = Client::connect(&s.url, &bob_token).await;
    slow.send(json!({"type": "sync"})).await;
    // 300 messages of 60 KB: far more than the socket buffers hold.
    let text = "x".repeat(60_000);
    let mut sent = Vec::new();
    for i in 0..300 {
        sent.push(a.say(&bob.id, &format!("big-{i}"), &text).await["msg_id"].clone());
    }
    eventually("the slow reader closed", WAIT, || async {
        let n = metric(&s.url, "parley_limit_hits_total", "limit=\"slow_reader\"").await;
        (n >= 1.0).then_some(())
    })
    .await;
    // The socket ends: whatever was buffered, then the close.
    while slow.recv().await.is_some() {}
    // Nothing was confirmed, so a plain sync brings all 300, in order once
    // repeats are dropped (a push may start the backlog before the sync
    // replays it; clients drop repeats by msg_id).
    let mut b = Client::connect(&s.url, &bob_token).await;
    b.send(json!({"type": "sync"})).await;
    let (mut got, mut seen) = (Vec::new(), std::collections::HashSet::new());
    while got.len() < sent.len() {
        let id = b.expect("msg").await["msg_id"].clone();
        if seen.insert(id.clone()) {
            got.push(id);
        }
    }
    assert_eq!(got, sent);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_and_a_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.idle_timeout_ms = 400;
    cfg.limits.ping_every_ms = 100;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut live = Client::connect(&s.url, &token).await;
    let mut silent = Client::connect(&s.url, &token).await;
    // Reading answers the server's pings: this socket stays.
    assert!(live.quiet("error", Duration::from_millis(1_200)).await);
    // The other never read, so never answered: it was closed.
    let ended = tokio::time::timeout(WAIT, async { while silent.recv().await.is_some() {} });
    assert!(ended.await.is_ok());
    live.send(json!({"type": "heartbeat", "active": true}))
        .await;
    assert!(live.quiet("error", Duration::from_millis(100)).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.header_timeout_ms = 300;
    let s = Server::start_with(cfg).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let t0 = std::time::Instant::now();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server closes it (perhaps after a 408): read until the end.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection")
        .ok();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("200 OK"), "{text}");
    s.stop().await;
}
