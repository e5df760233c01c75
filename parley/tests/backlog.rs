//! The edge's rule while delivery is behind (docs/protocol-additions.md,
//! "Limits"): sends are taken into the log until the pipeline is
//! `shed_behind_ms` behind, then refused with `unavailable` and a
//! `Retry-After`, appending nothing, and taken again once it caught up.
//! Separate processes on private Redis and ClickHouse servers, so the processor can be killed.

mod common;

use std::collections::BTreeSet;

use common::cluster::*;
use common::*;
use parley_engines::contract::servers::{ClickHouseServer, RedisServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_refused_while_delivery_is_behind_and_taken_again_once_it_caught_up() {
    let redis = RedisServer::start();
    let clickhouse = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let b = Backends {
        log: redis.url.clone(),
        state: redis.url.clone(),
        history: clickhouse.url.clone(),
    };
    assert!(parley(&["migrate"], &b, dir.path())
        .status()
        .unwrap()
        .success());
    let shed = [("PARLEY__LIMITS__SHED_BEHIND_MS", "1000")];
    let edge = spawn_with("ingest", 1, &b, dir.path(), &shed);
    let processor = spawn("process", 11, &b, dir.path());
    let _deliver = spawn("deliver", 21, &b, dir.path());
    let url = edge.url.clone();
    let (_alice, bob) = alice_and_bob(&url).await;
    let (ta, _) = login(&url, "alice", None).await;
    let (tb, _) = login(&url, "bob", None).await;
    let cid = direct(&_alice.id, &bob.id);
    let mut a = Client::connect(&url, &ta).await;
    let mut bc = Client::connect(&url, &tb).await;
    bc.send(json!({"type": "sync"})).await;
    let mut acked = BTreeSet::new();
    let first = a.say_until_acked(&bob.id, "before", "before").await;
    acked.insert(first["msg_id"].as_str().unwrap().to_owned());
    assert_eq!(bc.expect("msg").await["body"]["text"], "before");

    // The router stops: what is sent now is acked and waits in the log,
    // and once the edge has seen it wait over a second, sends are refused.
    drop(processor); // SIGKILL
    let queued = a.say(&bob.id, "queued", "queued").await;
    acked.insert(queued["msg_id"].as_str().unwrap().to_owned());
    eventually("the edge to see delivery a second behind", WAIT, || async {
        (metric(&url, "parley_pipeline_behind_seconds", "").await > 1.0).then_some(())
    })
    .await;
    let refused = a.try_say(&bob.id, "refused", "refused").await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("behind"),
        "{refused}"
    );
    // Over HTTP: 503 with when to come back.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .bearer_auth(&ta)
        .json(&text_to(&bob.id, "http-refused", "refused"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let retry = retry_after(&r);
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert!(metric(&url, "parley_limit_hits_total", "limit=\"backlog\"").await >= 2.0);

    // The router is back: the backlog drains, and the same socket's sends
    // are taken again.
    let _processor = spawn("process", 11, &b, dir.path());
    let after = a.say_until_acked(&bob.id, "after", "after").await;
    acked.insert(after["msg_id"].as_str().unwrap().to_owned());

    // Bob gets every acked message once, and nothing refused.
    let mut got = BTreeSet::from([first["msg_id"].as_str().unwrap().to_owned()]);
    while !got.contains(after["msg_id"].as_str().unwrap()) {
        let m: Value = bc.expect("msg").await;
        assert_ne!(m["body"]["text"], "refused", "{m}");
        assert_eq!(m["conversation_id"], cid);
        got.insert(m["msg_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, acked);
}
