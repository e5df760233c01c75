//! A rolling upgrade's middle: an edge that writes the previous envelope
//! version (2: before messages carried `reply_to` and `forwarded`) runs
//! beside one that writes the current one, in a cluster of processes
//! whose processors and delivery nodes are upgraded (deploy/README.md,
//! "Rolling upgrades"). A user on the old edge chats both ways with users
//! on the new one, in a conversation each edge appends for: nothing is
//! lost or repeated, and the log holds records of both versions.

mod common;

use std::collections::BTreeSet;

use common::cluster::*;
use common::*;
use parley_engines::{Log, ReadLimit};
use parley_schemas::ids::{ConversationId, UserId};
use parley_schemas::partition::conversation_partition;
use parley_schemas::topics;
use serde_json::{json, Value};

const EACH: usize = 10;
const OLD: u16 = 2;

/// `n` messages from `from` to `c`, however they interleave with others.
async fn msgs_from(c: &mut Client, from: &str, n: usize) -> Vec<Value> {
    let is = |v: &Value| v["type"] == "msg" && v["from"] == from;
    let mut got: Vec<Value> = c.skipped.iter().filter(|v| is(v)).cloned().collect();
    c.skipped.retain(|v| !is(v));
    while got.len() < n {
        let m = c.expect("msg").await;
        if is(&m) {
            got.push(m);
        } else {
            c.skipped.push(m);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_writing_the_previous_version_chats_with_an_upgraded_one() {
    let mut cl = Cluster::start().await;
    cl.kill("ingest", OLD);
    cl.spawn_with("ingest", OLD, &[("PARLEY__LOG_WRITE_VERSION", "2")]);
    let owner = cl.settled("ingest", SETTLE).await;
    let edges = cl.role("ingest");
    let url = |node: u16| edges.iter().find(|e| e.node == node).unwrap().url.clone();
    let (old, new) = (url(OLD), url(1));

    // Alice, and a peer for each edge: one whose conversation with her
    // the old edge appends, one the upgraded edge does.
    let alice = register(&new, "alice").await;
    let appender = |peer: &User| {
        let (a, b) = (
            UserId(alice.id.parse().unwrap()),
            UserId(peer.id.parse().unwrap()),
        );
        owner[&conversation_partition(&ConversationId::direct(a, b), PARTITIONS)]
    };
    let (mut on_old, mut on_new) = (None, None);
    for i in 0.. {
        let peer = register(&new, &format!("peer{i}")).await;
        let slot = if appender(&peer) == OLD {
            &mut on_old
        } else {
            &mut on_new
        };
        slot.get_or_insert(peer);
        if on_old.is_some() && on_new.is_some() {
            break;
        }
    }
    let (ta, _) = login(&old, "alice", None).await;
    let mut a = Client::connect(&old, &ta).await;
    for (peer, quotes_kept) in [(on_old.unwrap(), false), (on_new.unwrap(), true)] {
        let (tp, _) = login(&new, &peer.name, None).await;
        let mut p = Client::connect(&new, &tp).await;
        let mut sent = Vec::new();
        for i in 0..EACH {
            let ack = a
                .say(&peer.id, &format!("{}a{i}", peer.name), &format!("a{i}"))
                .await;
            sent.push(ack["msg_id"].clone());
        }
        // The peer answers each, quoting it.
        for (i, quoted) in sent.iter().enumerate() {
            let reply = json!({"type": "send", "client_msg_id": format!("b{i}"),
                "to": {"user": alice.id}, "body": {"text": format!("b{i}")}, "reply_to": quoted});
            p.send(reply).await;
            p.expect("ack").await;
        }
        let got = msgs_from(&mut p, &alice.id, EACH).await;
        let texts: Vec<&str> = got
            .iter()
            .map(|m| m["body"]["text"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("a{i}")).collect();
        assert_eq!(
            texts, want,
            "{} got Alice's messages, in order, once",
            peer.name
        );
        let got = msgs_from(&mut a, &peer.id, EACH).await;
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m["body"]["text"], format!("b{i}"), "{m}");
            // Version 2 has no place for a quote: what the old edge
            // appends goes without (deploy/README.md).
            let want = if quotes_kept {
                sent[i].clone()
            } else {
                Value::Null
            };
            assert_eq!(m["reply_to"], want, "{m}");
        }
    }

    // Both encodings are in the log.
    let log = parley_engines::redis::RedisLog::connect(&cl.urls.log, "parley")
        .await
        .unwrap();
    let mut versions = BTreeSet::new();
    for p in 0..PARTITIONS {
        let batch = log
            .read(topics::EVENTS, p, 0, ReadLimit::records(10_000))
            .await
            .unwrap();
        versions.extend(batch.records.iter().map(|r| r.payload[1]));
    }
    assert_eq!(versions, BTreeSet::from([2, 3]));
}
