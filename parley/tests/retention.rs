//! Log retention through the protocol: with small segments and no age
//! to keep, the log drops what every consumer has passed while messages
//! flow, and a device that was offline the whole time still gets every
//! message, as does scrollback.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_trimmed_behind_its_consumers_and_no_one_misses_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_segment_bytes = 4096;
    cfg.retention.log_hours = 0;
    cfg.retention.log_every_ms = 50;
    cfg.limits.sends_per_sec = 10_000;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let cid = direct(&alice.id, &bob.id);
    const N: usize = 300;
    let mut sent = Vec::new();
    for i in 0..N {
        let text = format!("message {i} {}", "x".repeat(100));
        sent.push(a.say(&bob.id, &format!("m{i}"), &text).await["msg_id"].clone());
    }
    eventually("events trimmed", WAIT, || async {
        let n = metric(
            &s.url,
            "parley_log_trimmed_records_total",
            "topic=\"events\"",
        )
        .await;
        (n > 0.0).then_some(())
    })
    .await;
    eventually("inbox trimmed", WAIT, || async {
        let n = metric(
            &s.url,
            "parley_log_trimmed_records_total",
            "topic=\"inbox\"",
        )
        .await;
        (n > 0.0).then_some(())
    })
    .await;

    // Bob was offline throughout: his device gets all of it, in order.
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;
    let mut got = Vec::new();
    let mut seen = BTreeSet::new();
    while got.len() < N {
        let m = b.expect("msg").await;
        if seen.insert(m["msg_id"].to_string()) {
            got.push(m["msg_id"].clone());
        }
    }
    assert_eq!(got, sent);
    // And scrollback (the history writer, a consumer too) holds each.
    let ids = eventually("scrollback complete", WAIT, || async {
        let ids = scrollback(&s.url, &bt, &cid).await;
        (ids.len() == N).then_some(ids)
    })
    .await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), N);
    s.stop().await;
}
