//! A device that confirms with `sync {since}` (the protocol's original
//! way) and never sends `received` gets, after a reconnect, only what
//! follows `since`: never a replay from its confirmed cursor first, however
//! soon after connecting its `sync` comes. On `parley up` and on the
//! six-process cluster, 20 runs for each delay.

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use serde_json::json;

/// Live messages a run sends while Bob is connected, unconfirmed.
const LIVE: usize = 20;
/// Messages sent while Bob is away.
const AWAY: usize = 5;
const RUNS: usize = 20;

/// Alice talks on `edges[0]`; Bob reconnects to each edge in turn.
async fn scenario(edges: &[String]) {
    let home = &edges[0];
    let (_, bob) = alice_and_bob(home).await;
    let (at, _) = login(home, "alice", None).await;
    let (bt, _) = login(home, "bob", None).await;
    let mut a = Client::connect(home, &at).await;
    let mut b = Client::connect(home, &bt).await;
    // The highest seq Bob holds, and what his last `sync` confirmed.
    let mut last = 0u64;
    let mut since = 0u64;
    let mut n = 0usize;
    let mut run = 0usize;
    for delay_ms in [0u64, 5, 50] {
        for _ in 0..RUNS {
            // The first run holds 200 live messages, the protocol's case.
            let live = if run == 0 { 200 } else { LIVE };
            for _ in 0..live {
                n += 1;
                a.say(&bob.id, &format!("m{n}"), &format!("live {n}")).await;
            }
            for _ in 0..live {
                let m = b.expect("msg").await;
                assert_eq!(m["seq"], last + 1, "live items in order: {m}");
                last += 1;
            }
            b.close().await;
            for _ in 0..AWAY {
                n += 1;
                a.say(&bob.id, &format!("m{n}"), &format!("away {n}")).await;
            }
            b = Client::connect(&edges[run % edges.len()], &bt).await;
            // The client's own pace, the scenario's parameter: its `sync`
            // goes 0, 5 or 50 ms after the socket opened.
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            b.send(json!({"type": "sync", "since": last})).await;
            since = last;
            for _ in 0..AWAY {
                let m = b.expect("msg").await;
                assert_eq!(
                    m["seq"],
                    last + 1,
                    "run {run} (sync {delay_ms} ms after connect): nothing at or \
                     below since={since} comes again: {m}"
                );
                assert_eq!(
                    m["body"]["text"],
                    format!(
                        "away {}",
                        n - AWAY + (m["seq"].as_u64().unwrap() - since) as usize
                    )
                );
                last += 1;
            }
            run += 1;
        }
    }
    // A plain `sync` still replays after the confirmed cursor: the last
    // `since`, stored when the socket closed.
    b.close().await;
    let mut b = Client::connect(&edges[0], &bt).await;
    b.send(json!({"type": "sync"})).await;
    for seq in since + 1..=last {
        assert_eq!(b.expect("msg").await["seq"], seq, "plain sync replays");
    }
    b.close().await;
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_since_after_reconnect_sends_nothing_older_on_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    scenario(std::slice::from_ref(&s.url)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_since_after_reconnect_sends_nothing_older_on_a_cluster() {
    let cl = Cluster::start().await;
    cl.settled("deliver", SETTLE).await;
    let edges: Vec<String> = cl.role("ingest").iter().map(|n| n.url.clone()).collect();
    scenario(&edges).await;
}
