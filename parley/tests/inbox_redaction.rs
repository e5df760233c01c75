//! A deletion for everyone reaches the stored inboxes: a device that
//! catches up after it gets the deleted message with its content blank
//! (then the deletion), in a 1:1 chat and in a large group (whose posts
//! are stored once). On the embedded engines, and on Redis and ClickHouse.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_device_never_gets_deleted_content_embedded() {
    let dir = tempfile::tempdir().unwrap();
    deleted_then_caught_up(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_device_never_gets_deleted_content_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, cfg) = on_redis_and_clickhouse(dir.path());
    deleted_then_caught_up(cfg).await;
}

fn delete(to: Value, cid: &str, msg_id: &str) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": to,
           "body": {"delete": {"msg_id": msg_id}}})
}

async fn deleted_then_caught_up(mut cfg: parley::Config) {
    // Every group of more than one member is read fan-out: its posts are
    // stored once, in the group's stream.
    cfg.group_read_fanout_above = 1;
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    // Bob's phone is online: once it has both deletions, his inbox's
    // partition has applied them (pushes follow the store's write).
    let (phone, _) = login(&s.url, "bob", None).await;
    let mut p = Client::connect(&s.url, &phone).await;
    let to_bob = json!({"user": bob.id});
    let secret = a.say(&bob.id, "1", "the secret plan").await["msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.say(&bob.id, "2", "see you").await;
    a.send(delete(to_bob, "3", &secret)).await;
    a.expect("ack").await;
    let g = create_group(&s.url, &at, "trio", &[&bob.id, &carol.id]).await;
    a.send(send_frame(&g, "4", "the group secret")).await;
    let posted = a.expect("ack").await["msg_id"].as_str().unwrap().to_owned();
    a.send(send_frame(&g, "5", "kept")).await;
    a.expect("ack").await;
    a.send(delete(json!({"group": g}), "6", &posted)).await;
    a.expect("ack").await;

    until_both_deletions(&mut p).await;

    // Bob's laptop comes now, and catches up from the start.
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;
    let frames = until_both_deletions(&mut b).await;
    let all = Value::Array(frames.clone()).to_string();
    assert!(!all.contains("secret"), "deleted content delivered: {all}");
    for id in [&secret, &posted] {
        let m = frames
            .iter()
            .find(|m| m["msg_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not delivered: {all}"));
        assert_eq!(m["body"], json!({"text": ""}), "{m}");
    }
    assert!(all.contains("see you") && all.contains("kept"), "{all}");
    assert!(
        metric(&s.url, "parley_inbox_redactions_total", "found=\"yes\"").await >= 3.0,
        "bob's and alice's copies, and the post"
    );
    s.stop().await;
}

/// The `msg` frames up to and with the second deletion.
async fn until_both_deletions(c: &mut Client) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut deletions = 0;
    while deletions < 2 {
        let m = c.expect("msg").await;
        deletions += usize::from(m["body"].get("delete").is_some());
        frames.push(m);
    }
    frames
}
