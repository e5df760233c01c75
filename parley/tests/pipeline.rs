//! 1:1 chat through the protocol only: ticks, offline delivery, several
//! devices, idempotent resends, bad input, restarts.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_chat_with_delivered_and_read_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;

    let ack = a.say(&bob.id, "c-1", "hello bob").await;
    let cid = direct(&alice.id, &bob.id);
    assert_eq!(ack["conversation_id"], cid.as_str());
    let msg_id = ack["msg_id"].as_str().unwrap().to_owned();
    assert!(ack["ts"].as_u64().unwrap() > 0);

    let m = b.expect("msg").await;
    assert_eq!(m["msg_id"], msg_id.as_str());
    assert_eq!(m["from"], alice.id.as_str());
    assert_eq!(m["to"], json!({"user": bob.id}));
    assert_eq!(m["body"], json!({"text": "hello bob"}));
    assert_eq!(m["conversation_id"], cid.as_str());
    assert_eq!(m["seq"], 1);
    assert_eq!(m["ts"], ack["ts"]);

    b.send(
        json!({"type": "receipt", "conversation_id": cid, "msg_id": msg_id, "status": "delivered"}),
    )
    .await;
    let st = a.expect("status").await;
    assert_eq!(
        (
            st["status"].as_str(),
            st["by"].as_str(),
            st["msg_id"].as_str()
        ),
        (
            Some("delivered"),
            Some(bob.id.as_str()),
            Some(msg_id.as_str())
        )
    );
    b.send(json!({"type": "receipt", "conversation_id": cid, "msg_id": msg_id, "status": "read"}))
        .await;
    let st = a.expect("status").await;
    assert_eq!(st["status"], "read");
    assert_eq!(st["conversation_id"], cid.as_str());

    // The sending device is not sent its own message back.
    assert!(
        a.skipped.iter().all(|f| f["type"] != "msg"),
        "{:?}",
        a.skipped
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_user_gets_the_whole_backlog_in_order_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let mut sent = Vec::new();
    for i in 0..100 {
        let ack = a
            .say(&bob.id, &format!("c-{i}"), &format!("message {i}"))
            .await;
        sent.push(ack["msg_id"].as_str().unwrap().to_owned());
    }
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    b.send(json!({"type": "sync"})).await;
    let mut last = None;
    for (i, id) in sent.iter().enumerate() {
        let m = b.expect("msg").await;
        assert_eq!(m["seq"], (i + 1) as u64, "dense seq");
        assert_eq!(m["from"], alice.id.as_str());
        assert_eq!(m["msg_id"], id.as_str(), "in order");
        assert_eq!(m["body"]["text"], format!("message {i}"));
        last = Some(m);
    }
    assert!(
        b.quiet("msg", Duration::from_millis(300)).await,
        "exactly the backlog"
    );
    let last = last.unwrap();
    b.send(json!({"type": "receipt", "conversation_id": last["conversation_id"], "msg_id": last["msg_id"], "status": "read"}))
        .await;
    let st = a.expect("status").await;
    assert_eq!(
        (st["status"].as_str(), st["msg_id"].as_str()),
        (Some("read"), last["msg_id"].as_str())
    );
    assert_eq!(st["by"], bob.id.as_str());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_gets_every_message_and_catches_up_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let (phone_token, _) = login(&s.url, "bob", None).await;
    let (laptop_token, laptop_dev) = login(&s.url, "bob", None).await;
    let mut phone = Client::connect(&s.url, &phone_token).await;
    let mut laptop = Client::connect(&s.url, &laptop_token).await;

    let first = a.say(&bob.id, "x-1", "one").await;
    for dev in [&mut phone, &mut laptop] {
        assert_eq!(dev.expect("msg").await["msg_id"], first["msg_id"]);
    }
    // The laptop confirms 1, syncs (nothing after its cursor) and goes
    // away; three more arrive.
    laptop.send(json!({"type": "received", "seq": 1})).await;
    laptop.send(json!({"type": "sync"})).await;
    assert!(
        laptop.quiet("msg", Duration::from_millis(300)).await,
        "nothing past its cursor"
    );
    laptop.close().await;
    let mut ids = Vec::new();
    for i in 2..=4 {
        let ack = a.say(&bob.id, &format!("x-{i}"), "more").await;
        ids.push(ack["msg_id"].clone());
        let m = phone.expect("msg").await;
        assert_eq!(
            (m["msg_id"].clone(), m["seq"].as_u64()),
            (ack["msg_id"].clone(), Some(i))
        );
    }
    // Back on the same device id: exactly what it missed.
    let (token, dev) = login(&s.url, "bob", Some(&laptop_dev)).await;
    assert_eq!(dev, laptop_dev);
    let mut laptop = Client::connect(&s.url, &token).await;
    laptop.send(json!({"type": "sync"})).await;
    for (i, id) in ids.iter().enumerate() {
        let m = laptop.expect("msg").await;
        assert_eq!((&m["msg_id"], m["seq"].as_u64()), (id, Some(i as u64 + 2)));
    }
    assert!(laptop.quiet("msg", Duration::from_millis(300)).await);
    // An explicit `since` replays from there.
    laptop.send(json!({"type": "sync", "since": 0})).await;
    assert_eq!(laptop.expect("msg").await["msg_id"], first["msg_id"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_across_a_reconnect_gets_the_same_id_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    let first = a.say(&bob.id, "resend-me", "once").await;
    // Twice in a row on the same socket too.
    let again = a.say(&bob.id, "resend-me", "once").await;
    assert_eq!(again["msg_id"], first["msg_id"]);
    a.close().await;
    let mut a = Client::connect(&s.url, &token).await;
    let third = a.say(&bob.id, "resend-me", "once").await;
    assert_eq!(third, first, "the same ack, msg_id and ts included");
    a.say(&bob.id, "after", "next").await;

    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    b.send(json!({"type": "sync"})).await;
    let m1 = b.expect("msg").await;
    let m2 = b.expect("msg").await;
    assert_eq!(m1["msg_id"], first["msg_id"]);
    assert_eq!(
        (m2["body"]["text"].as_str(), m2["seq"].as_u64()),
        (Some("next"), Some(2))
    );
    assert!(
        b.quiet("msg", Duration::from_millis(300)).await,
        "delivered once"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_frame_keeps_the_socket_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    register(&s.url, "carol").await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    let send = |cid: serde_json::Value, to: serde_json::Value, body: serde_json::Value| json!({"type": "send", "client_msg_id": cid, "to": to, "body": body});
    let big = "x".repeat(64 * 1024 + 1);
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_request"),
        (json!({"type": "launch"}).to_string(), "bad_request"),
        (json!({"client_msg_id": "c"}).to_string(), "bad_request"),
        (json!({"type": "send", "to": {"user": bob.id}, "body": {"text": "x"}}).to_string(), "bad_request"),
        (send(json!(5), json!({"user": bob.id}), json!({"text": "x"})).to_string(), "bad_request"),
        (send(json!("c"), json!({"user": 2}), json!({"text": "x"})).to_string(), "bad_request"),
        (send(json!(""), json!({"user": bob.id}), json!({"text": "x"})).to_string(), "bad_request"),
        (send(json!("c".repeat(65)), json!({"user": bob.id}), json!({"text": "x"})).to_string(), "bad_request"),
        (send(json!("c"), json!({"user": bob.id}), json!({"text": big})).to_string(), "too_large"),
        (send(json!("c"), json!({"user": "999999"}), json!({"text": "x"})).to_string(), "not_found"),
        (send(json!("c"), json!({"user": bob.id}), json!({"html": "x"})).to_string(), "bad_request"),
        (json!({"type": "receipt", "conversation_id": "d:2:3", "msg_id": "1", "status": "read"}).to_string(), "forbidden"),
        (json!({"type": "receipt", "conversation_id": "d:3:2", "msg_id": "1", "status": "read"}).to_string(), "bad_request"),
        (json!({"type": "receipt", "conversation_id": direct(&alice.id, &bob.id), "msg_id": "1", "status": "seen"}).to_string(), "bad_request"),
        (json!({"type": "heartbeat", "active": "yes"}).to_string(), "bad_request"),
        ("x".repeat(1024 * 1024 + 1), "too_large"),
    ];
    for (frame, code) in &cases {
        a.send_raw(frame.clone()).await;
        let e = a.expect("error").await;
        assert_eq!(e["code"], *code, "frame {}", &frame[..frame.len().min(120)]);
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    a.send_binary(vec![1, 2, 3]).await;
    assert_eq!(a.expect("error").await["code"], "bad_request");
    // `ref` names the client_msg_id it answers.
    a.send(send(
        json!("my-ref"),
        json!({"user": "999999"}),
        json!({"text": "x"}),
    ))
    .await;
    assert_eq!(a.expect("error").await["ref"], "my-ref");

    // Still open, and nothing was appended: bob's first message is seq 1.
    assert!(
        a.skipped.iter().all(|f| f["type"] != "ack"),
        "no bad frame was acked"
    );
    a.say(&bob.id, "good", "finally").await;
    let m = b.expect("msg").await;
    assert_eq!(
        (m["seq"].as_u64(), m["body"]["text"].as_str()),
        (Some(1), Some("finally"))
    );
    assert!(b.quiet("status", Duration::from_millis(200)).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bad_or_expired_token_is_refused_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ws = s.url.replace("http://", "ws://");
    for url in [format!("{ws}/v1/ws"), format!("{ws}/v1/ws?token=nope")] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
    }
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/messages", s.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    // Wrong password; a taken name.
    register(&s.url, "dana").await;
    let r = http
        .post(format!("{}/v1/sessions", s.url))
        .json(&json!({"username": "dana", "password": "wrong-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/v1/users", s.url))
        .json(&json!({"username": "dana", "password": "password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_send_acks_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    let body =
        json!({"client_msg_id": "h-1", "to": {"user": bob.id}, "body": {"text": "over http"}});
    let http = reqwest::Client::new();
    let ack: serde_json::Value = http
        .post(format!("{}/v1/messages", s.url))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["client_msg_id"], "h-1");
    assert_eq!(b.expect("msg").await["msg_id"], ack["msg_id"]);
    let again: serde_json::Value = http
        .post(format!("{}/v1/messages", s.url))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, ack);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    let mut acked = HashSet::new();
    for i in 0..50 {
        acked.insert(
            a.say(&bob.id, &format!("g-{i}"), "before").await["msg_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    drop(a);
    s.stop().await;

    let s = Server::start(dir.path()).await;
    // Tokens survive the restart (the key is kept in the data dir).
    let mut a = Client::connect(&s.url, &token).await;
    acked.insert(
        a.say(&bob.id, "g-after", "after").await["msg_id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    b.send(json!({"type": "sync"})).await;
    let mut got = HashSet::new();
    for _ in 0..51 {
        got.insert(b.expect("msg").await["msg_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, acked);
    assert!(b.quiet("msg", Duration::from_millis(300)).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_comes_from_the_token_and_typing_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let cid = direct(&alice.id, &bob.id);

    // A forged `from` is ignored: the message is Alice's.
    a.send(json!({"type": "send", "client_msg_id": "f-1", "from": carol.id, "to": {"user": bob.id}, "body": {"text": "it's me"}}))
        .await;
    a.expect("ack").await;
    assert_eq!(b.expect("msg").await["from"], alice.id.as_str());

    // Typing reaches the other member at once...
    a.send(json!({"type": "typing", "conversation_id": cid}))
        .await;
    let t = b.expect("typing").await;
    assert_eq!(
        t,
        json!({"type": "typing", "conversation_id": cid, "user_id": alice.id})
    );
    // ...is refused outside one's conversations...
    let other = direct(&bob.id, &carol.id);
    a.send(json!({"type": "typing", "conversation_id": other}))
        .await;
    assert_eq!(a.expect("error").await["code"], "forbidden");
    // ...and is never stored: a fresh sync replays the message, no typing.
    b.close().await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync", "since": 0})).await;
    assert_eq!(b.expect("msg").await["body"]["text"], "it's me");
    assert!(b.quiet("typing", Duration::from_millis(300)).await);
    assert!(
        b.skipped.iter().all(|f| f["type"] != "msg"),
        "one message only"
    );
    s.stop().await;
}
