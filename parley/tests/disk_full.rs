//! `parley up` with its log on a full disk (a size-limited tmpfs mounted
//! by the test, as root): sends get `unavailable` and nothing is acked
//! that is not stored, `/readyz` says so, and once space returns service
//! resumes by itself; every acked message reaches the recipient.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use parley_engines::contract::servers::Tmpfs;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_sends_and_service_resumes_when_space_returns() {
    let Some(disk) = Tmpfs::mount(1024) else {
        println!("skipped: mounting a tmpfs needs root");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        log: Some(format!("file://{}", disk.path.display())),
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let (bob_token, _) = login(&s.url, "bob", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    let text = "d".repeat(4000);
    let mut acked: Vec<Value> = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    let mut resized = false;
    while acked.len() < 400 {
        let cid = format!("d-{i}");
        let f = a.try_say(&bob.id, &cid, &text).await;
        if f["type"] == "ack" {
            acked.push(f["msg_id"].clone());
            i += 1;
            continue;
        }
        // Full: refused as retryable, and /readyz says so.
        assert_eq!(f["code"], "unavailable", "{f}");
        refused += 1;
        if !resized {
            let r = reqwest::get(format!("{}/readyz", s.url)).await.unwrap();
            assert_eq!(r.status(), 503);
            let poisoned = metric(&s.url, "parley_log_partitions_poisoned", "").await;
            assert!(poisoned >= 1.0, "the gauge says so too");
            disk.resize(64 * 1024);
            resized = true;
        }
        assert!(refused < 200, "sends never resumed");
        // The same client_msg_id again, as a client retries.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resized, "the disk never filled");
    eventually("ready again", WAIT, || async {
        let r = reqwest::get(format!("{}/readyz", s.url)).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert_eq!(
        metric(&s.url, "parley_log_partitions_poisoned", "").await,
        0.0
    );

    // Every acked message reaches Bob, once after dropping duplicates (a
    // live item still being routed can start the backlog before his
    // `sync` replays it again: clients drop repeats by msg_id), in order.
    let want: HashSet<Value> = acked.iter().cloned().collect();
    assert_eq!(want.len(), acked.len(), "no msg_id acked twice");
    let mut b = Client::connect(&s.url, &bob_token).await;
    b.send(json!({"type": "sync"})).await;
    let (mut got, mut seen) = (Vec::new(), HashSet::new());
    while got.len() < acked.len() {
        let id = b.expect("msg").await["msg_id"].clone();
        if seen.insert(id.clone()) {
            got.push(id);
        }
    }
    assert_eq!(got, acked);
    // And nothing that was never acked surfaces later.
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(300), b.recv()).await {
        if f["type"] == "msg" {
            assert!(want.contains(&f["msg_id"]), "an unacked message: {f}");
        }
    }
    s.stop().await;
}
