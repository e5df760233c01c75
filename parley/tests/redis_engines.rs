//! `parley up` on real redis-servers (started for the test), through the
//! protocol: backlog, ticks and a restart, with the state on Redis, and
//! with both the log (Redis Streams) and the state on Redis.

mod common;

use std::time::Duration;

use common::*;
use parley_engines::contract::servers::RedisServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_redis_state_and_survives_a_restart() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        state: Some(redis.url.clone()),
        ..config(dir.path())
    };
    chat_restart_chat(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_redis_streams_and_redis_state() {
    let (log, state) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        log: Some(log.url.clone()),
        state: Some(state.url.clone()),
        ..config(dir.path())
    };
    chat_restart_chat(cfg).await;
}

/// Read fan-out with the state on Redis: a group's posts stored once, runs
/// in the members' inboxes, read back live, after `sync`, and from the
/// middle of a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_groups_are_stored_once_on_redis_and_synced_by_seq() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        state: Some(redis.url.clone()),
        group_read_fanout_above: 1,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let group = create_group(&s.url, &at, "big", &[&bob.id, &carol.id]).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        a.send(send_frame(&group, &format!("g{i}"), &format!("big {i}")))
            .await;
        ids.push(a.expect("ack").await["msg_id"].clone());
    }
    // Carol, online, gets them live with her own seqs.
    for (i, id) in ids.iter().enumerate() {
        let m = c.expect("msg").await;
        assert_eq!((&m["msg_id"], m["seq"].as_u64()), (id, Some(i as u64 + 1)));
    }
    // Bob was offline: all ten after sync, then the tail from seq 4 on.
    // He connects once his inbox holds all ten: one that was still being
    // filled would also push him some live, which his `sync` then sends
    // again (it replays after his confirmed cursor), as it should.
    let state = parley::backends::open_state(&redis.url).await.unwrap();
    let bob_id = parley_schemas::ids::UserId(bob.id.parse().unwrap());
    eventually("Bob's inbox has all ten", WAIT, || async {
        (state.inbox_seq(bob_id).await.ok()? == 10).then_some(())
    })
    .await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;
    for (i, id) in ids.iter().enumerate() {
        let m = b.expect("msg").await;
        assert_eq!((&m["msg_id"], m["seq"].as_u64()), (id, Some(i as u64 + 1)));
        assert_eq!(m["body"]["text"], format!("big {i}"));
    }
    b.send(json!({"type": "sync", "since": 4})).await;
    for (i, id) in ids.iter().enumerate().skip(4) {
        let m = b.expect("msg").await;
        assert_eq!((&m["msg_id"], m["seq"].as_u64()), (id, Some(i as u64 + 1)));
    }
    assert!(b.quiet("msg", Duration::from_millis(300)).await);
    s.stop().await;
}

async fn chat_restart_chat(cfg: parley::Config) {
    let s = Server::start_with(cfg.clone()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(a.say(&bob.id, &format!("r-{i}"), &format!("m{i}")).await["msg_id"].clone());
    }
    drop(a);
    s.stop().await;

    // Same Redis, same log: nothing lost, resends keep their ids.
    let s = Server::start_with(cfg).await;
    let mut a = Client::connect(&s.url, &token).await;
    assert_eq!(a.say(&bob.id, "r-0", "m0").await["msg_id"], ids[0]);
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;
    let mut last = None;
    for (i, id) in ids.iter().enumerate() {
        let m = b.expect("msg").await;
        assert_eq!((&m["msg_id"], m["seq"].as_u64()), (id, Some(i as u64 + 1)));
        last = Some(m);
    }
    assert!(b.quiet("msg", Duration::from_millis(300)).await);
    let last = last.unwrap();
    b.send(json!({"type": "receipt", "conversation_id": last["conversation_id"], "msg_id": last["msg_id"], "status": "read"}))
        .await;
    let st = a.expect("status").await;
    assert_eq!(
        (st["status"].as_str(), st["by"].as_str()),
        (Some("read"), Some(bob.id.as_str()))
    );
    assert_ne!(alice.id, bob.id);
    s.stop().await;
}
