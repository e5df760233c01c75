//! Faults of the state store under load, through the protocol: Redis is
//! killed (SIGKILL) and started again while a sender keeps sending, once
//! with an AOF (`appendfsync always`) and once with no persistence at all
//! (it comes back empty, and the jobs rebuild it from the log). Every
//! acked message reaches the recipient, once after dropping duplicates,
//! in order.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use parley_engines::contract::servers::RedisServer;
use serde_json::{json, Value};

const SENDS: usize = 200;

/// Sends `SENDS` messages, resending each `client_msg_id` on `unavailable`
/// (as a client does) until it is acked, with Redis restarted after the
/// first third; returns the acked msg_ids in order.
async fn send_through_a_restart(
    url: &str,
    token: &str,
    to: &str,
    redis: &mut RedisServer,
) -> Vec<Value> {
    let mut a = Client::connect(url, token).await;
    let mut acked = Vec::new();
    for i in 0..SENDS {
        if i == SENDS / 3 {
            redis.restart();
        }
        let cid = format!("f-{i}");
        acked.push(a.say_until_acked(to, &cid, &cid).await["msg_id"].clone());
    }
    acked
}

async fn nothing_acked_is_lost(redis_args: &[&str]) {
    let mut redis = RedisServer::start_with(redis_args);
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        state: Some(redis.url.clone()),
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let (bob_token, _) = login(&s.url, "bob", None).await;
    let acked = send_through_a_restart(&s.url, &token, &bob.id, &mut redis).await;
    assert_eq!(acked.len(), SENDS);

    // Bob's token works again once his device's session is back (from the
    // AOF, or rebuilt from the log), and his sync brings every message.
    eventually("Bob's session", WAIT, || async {
        (get(&s.url, &bob_token, "/v1/users/me").await.0 == 200).then_some(())
    })
    .await;
    let want: HashSet<Value> = acked.iter().cloned().collect();
    let got = eventually("every acked message", Duration::from_secs(30), || async {
        let mut b = Client::connect(&s.url, &bob_token).await;
        b.send(json!({"type": "sync", "since": 0})).await;
        let mut got = Vec::new();
        let mut seen = HashSet::new();
        while let Some(m) = next_msg(&mut b).await {
            if seen.insert(m["msg_id"].clone()) {
                got.push(m["msg_id"].clone());
            }
            if seen.len() == want.len() {
                break;
            }
        }
        b.close().await;
        (seen == want).then_some(got)
    })
    .await;
    assert_eq!(got, acked, "in order");
    s.stop().await;
}

/// The next `msg` frame, or `None` once none comes for a while.
async fn next_msg(c: &mut Client) -> Option<Value> {
    loop {
        let f = tokio::time::timeout(Duration::from_millis(500), c.recv())
            .await
            .ok()??;
        if f["type"] == "msg" {
            return Some(f);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_under_load_loses_nothing() {
    nothing_acked_is_lost(&["--appendonly", "yes", "--appendfsync", "always"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_under_load_loses_nothing() {
    nothing_acked_is_lost(&[]).await;
}
