//! Presence and last seen through the protocol. Presence is eventually
//! exact, so each check waits (bounded) for the derived state to settle.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn presence(url: &str, token: &str, user: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/v1/users/{user}/presence"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `ok` holds; presence is derived asynchronously.
async fn until(url: &str, token: &str, user: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let p = presence(url, token, user).await;
        if ok(&p) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence never became right: {p}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_moves_on_user_activity_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let p = presence(&s.url, &at, &bob.id).await;
    assert_eq!(
        p,
        json!({"user_id": bob.id, "online": false, "last_seen": null})
    );

    // Connected in the background: online, but no activity yet.
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "heartbeat", "active": false})).await;
    let p = until(&s.url, &at, &bob.id, |p| p["online"] == true).await;
    assert_eq!(p["last_seen"], Value::Null);

    // In the foreground: last seen moves.
    b.send(json!({"type": "heartbeat", "active": true})).await;
    let p = until(&s.url, &at, &bob.id, |p| p["last_seen"].is_u64()).await;
    let seen = p["last_seen"].as_u64().unwrap();

    // A message received in the background does not move it.
    b.send(json!({"type": "heartbeat", "active": false})).await;
    let mut a = Client::connect(&s.url, &at).await;
    a.say(&bob.id, "p-1", "are you there?").await;
    b.expect("msg").await;
    b.send(json!({"type": "heartbeat", "active": false})).await;
    // Alice's own send moved hers; Bob's stays where it was.
    until(&s.url, &bt, &alice.id, |p| p["last_seen"].is_u64()).await;
    assert_eq!(presence(&s.url, &at, &bob.id).await["last_seen"], seen);

    // Bob's send is activity.
    tokio::time::sleep(Duration::from_millis(5)).await;
    b.say(&alice.id, "p-2", "yes").await;
    until(&s.url, &at, &bob.id, |p| {
        p["last_seen"].as_u64() > Some(seen)
    })
    .await;

    // Closing the socket: offline, last seen kept.
    b.close().await;
    let p = until(&s.url, &at, &bob.id, |p| p["online"] == false).await;
    assert!(p["last_seen"].as_u64() > Some(seen));
    let r = reqwest::Client::new()
        .get(format!("{}/v1/users/999/presence", s.url))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}
