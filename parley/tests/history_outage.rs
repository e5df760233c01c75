//! ClickHouse goes down under load and comes back: sends keep being
//! acknowledged (the log has them), the history writer's lag and failures
//! show on /metrics, and once ClickHouse is back every acknowledged message
//! is in history exactly once. (Its own test binary: the metrics registry
//! is per process.)

mod common;

use std::time::Duration;

use common::*;
use parley_engines::contract::servers::ClickHouseServer;

/// Sends `n` messages to `to`; returns their msg_ids.
async fn send(a: &mut Client, to: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let client_msg_id = format!("o-{:x}", rand_id());
        let ack = a.say(to, &client_msg_id, "during the outage?").await;
        out.push(ack["msg_id"].as_str().unwrap().parse().unwrap());
    }
    out
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn sql(ch: &ClickHouseServer, q: &str) -> String {
    tokio::task::block_in_place(|| ch.sql(q)).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_history_exactly_once_across_a_clickhouse_outage() {
    let mut ch = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        history: Some(ch.url.clone()),
        ..config(dir.path())
    };
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (token, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &token).await;
    let mut ids = send(&mut a, &bob.id, 100).await;
    eventually("the first 100 in history", WAIT, || async {
        let count =
            tokio::task::block_in_place(|| ch.try_sql("SELECT count() FROM parley.messages"));
        (count.map(|c| c.trim().to_owned()) == Ok("100".to_owned())).then_some(())
    })
    .await;

    // Down: sends are still acknowledged; the writer falls behind.
    ch.stop();
    ids.extend(send(&mut a, &bob.id, 200).await);
    eventually(
        "the writer's lag and failures on /metrics",
        WAIT,
        || async {
            let lag = metric(&s.url, "parley_consumer_lag_records", "job=\"history\"").await;
            let failed = metric(
                &s.url,
                "parley_history_write_failures_total",
                "job=\"history\"",
            )
            .await;
            (lag >= 1.0 && failed >= 1.0).then_some(())
        },
    )
    .await;
    ids.extend(send(&mut a, &bob.id, 100).await);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back: the writer catches up, and nothing is doubled.
    tokio::task::block_in_place(|| ch.resume());
    ids.extend(send(&mut a, &bob.id, 100).await);
    assert_eq!(ids.len(), 500);
    eventually("history caught up", Duration::from_secs(60), || async {
        (sql(&ch, "SELECT uniqExact(msg_id) FROM parley.messages") == "500").then_some(())
    })
    .await;
    // Wait for the writer to have stored its offset past everything, so no
    // insert is still in flight when the table is merged below.
    eventually("the writer's lag back to 0", WAIT, || async {
        let lag = metric(&s.url, "parley_consumer_lag_records", "job=\"history\"").await;
        (lag == 0.0).then_some(())
    })
    .await;
    assert_eq!(sql(&ch, "SELECT count() FROM parley.messages FINAL"), "500");
    sql(&ch, "OPTIMIZE TABLE parley.messages FINAL");
    assert_eq!(
        sql(&ch, "SELECT count() FROM parley.messages"),
        "500",
        "exactly once after merging"
    );
    let stored: Vec<u64> = sql(&ch, "SELECT msg_id FROM parley.messages ORDER BY msg_id")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(stored, ids, "the acknowledged messages, no others");
    let lag = metric(&s.url, "parley_consumer_lag_records", "job=\"history\"").await;
    assert_eq!(lag, 0.0, "caught up");
    // And Bob's scrollback, paged back to the start, is whole.
    let (tb, _) = login(&s.url, "bob", None).await;
    let cid = direct(&alice.id, &bob.id);
    ids.reverse();
    assert_eq!(
        scrollback(&s.url, &tb, &cid).await,
        ids,
        "newest first, all"
    );
    s.stop().await;
}
