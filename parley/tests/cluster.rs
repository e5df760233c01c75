//! Every role as its own process: 2 edges, 2 processors and 2 delivery
//! nodes on the Redis Streams log, the Redis state store and a ClickHouse
//! history, each a private server. Clients use the protocol only; the test reads the
//! nodes' `/metrics` to see who owns what, and SIGKILLs nodes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use parley_schemas::ids::{ConversationId, UserId};
use parley_schemas::partition::{conversation_partition, user_partition};
use serde_json::{json, Value};

/// Reads `msg` frames until `n` arrived; returns them.
async fn messages(c: &mut Client, n: usize) -> Vec<Value> {
    // Those read while waiting for acks first.
    let (mut got, rest): (Vec<Value>, Vec<Value>) =
        c.skipped.drain(..).partition(|v| v["type"] == "msg");
    c.skipped = rest;
    while got.len() < n {
        got.push(c.expect("msg").await);
    }
    // Stored, as a client would: confirm them.
    if let Some(seq) = got.iter().filter_map(|m| m["seq"].as_u64()).max() {
        c.send(json!({"type": "received", "seq": seq})).await;
    }
    got
}

fn id(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_processes_chat_and_survive_sigkills() {
    let mut cl = Cluster::start().await;
    let inbox_owner = cl.settled("deliver", SETTLE).await;
    let edges = cl.role("ingest");
    let (e1, e2) = (edges[0].url.clone(), edges[1].url.clone());
    // Alice on one edge, Bob on the other.
    let (alice, bob) = alice_and_bob(&e1).await;
    let (ta, _) = login(&e1, "alice", None).await;
    let (tb, bob_device) = login(&e2, "bob", None).await;
    let mut a = Client::connect(&e1, &ta).await;
    let mut b = Client::connect(&e2, &tb).await;
    let cid = direct(&alice.id, &bob.id);

    // Interleaved both ways: acks carry rising ids, whichever edge took the
    // send (half of them are forwarded to the partition's owner).
    let mut last_id = 0;
    // Every msg_id Alice was acked for a message to Bob, in order.
    let mut alice_to_bob: Vec<u64> = Vec::new();
    // And every msg_id of the conversation, for scrollback at the end.
    let mut all_ids: Vec<u64> = Vec::new();
    for i in 0..10 {
        for (c, to, who) in [(&mut a, &bob.id, "a"), (&mut b, &alice.id, "b")] {
            let ack = c
                .say(to, &format!("{who}-{i}"), &format!("{who} says {i}"))
                .await;
            let m = id(&ack["msg_id"]);
            assert!(m > last_id, "ids rise across edges within a conversation");
            last_id = m;
            all_ids.push(m);
            if who == "a" {
                alice_to_bob.push(m);
            }
        }
    }
    let to_bob = messages(&mut b, 10).await;
    let to_alice = messages(&mut a, 10).await;
    for (got, who) in [(&to_bob, "a"), (&to_alice, "b")] {
        let texts: Vec<&str> = got
            .iter()
            .map(|m| m["body"]["text"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..10).map(|i| format!("{who} says {i}")).collect();
        assert_eq!(texts, want);
    }
    // Ticks both ways.
    let last_to_bob = to_bob.last().unwrap()["msg_id"].clone();
    b.send(
        json!({"type": "receipt", "conversation_id": cid, "msg_id": last_to_bob, "status": "read"}),
    )
    .await;
    let st = a.expect("status").await;
    assert_eq!(
        (st["msg_id"].clone(), st["status"].as_str()),
        (last_to_bob, Some("read"))
    );
    let last_to_alice = to_alice.last().unwrap()["msg_id"].clone();
    a.send(json!({"type": "receipt", "conversation_id": cid, "msg_id": last_to_alice, "status": "delivered"}))
        .await;
    let st = b.expect("status").await;
    assert_eq!(st["msg_id"], last_to_alice);
    // Bob's seqs from here on: only Alice sends, so they must be dense.
    let mut bob_seqs: Vec<u64> = Vec::new();

    // SIGKILL the delivery node that sequences Bob's inbox. Bob leaves and
    // comes back on the other edge; everything sent meanwhile reaches him.
    let bob_uid = UserId(bob.id.parse().unwrap());
    let victim = inbox_owner[&user_partition(bob_uid, PARTITIONS)];
    let t0 = Instant::now();
    cl.kill("deliver", victim);
    b.close().await;
    for i in 0..10 {
        let ack = a
            .say(
                &bob.id,
                &format!("d-{i}"),
                &format!("while delivery died {i}"),
            )
            .await;
        alice_to_bob.push(id(&ack["msg_id"]));
    }
    let (tb, _) = login(&e1, "bob", Some(&bob_device)).await;
    let mut b = Client::connect(&e1, &tb).await;
    b.send(json!({"type": "sync"})).await;
    let got = messages(&mut b, 10).await;
    let took = t0.elapsed();
    let texts: Vec<&str> = got
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..10)
        .map(|i| format!("while delivery died {i}"))
        .collect();
    assert_eq!(texts, want, "Bob's backlog, in order, after the takeover");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    bob_seqs.extend(got.iter().map(|m| m["seq"].as_u64().unwrap()));
    cl.settled("deliver", Duration::from_secs(1)).await;

    // SIGKILL the processor that routes this conversation. Another takes
    // its partitions within 10 s; nothing is lost or applied twice.
    let conv: ConversationId = cid.parse().unwrap();
    let proc_owner = cl.settled("process", SETTLE).await;
    let victim = proc_owner[&conversation_partition(&conv, PARTITIONS)];
    let t0 = Instant::now();
    cl.kill("process", victim);
    for i in 0..10 {
        let ack = a
            .say(
                &bob.id,
                &format!("p-{i}"),
                &format!("while routing died {i}"),
            )
            .await;
        alice_to_bob.push(id(&ack["msg_id"]));
    }
    cl.settled("process", Duration::from_secs(10)).await;
    let takeover = t0.elapsed();
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    let got = messages(&mut b, 10).await;
    let texts: Vec<&str> = got
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("while routing died {i}")).collect();
    assert_eq!(texts, want);
    bob_seqs.extend(got.iter().map(|m| m["seq"].as_u64().unwrap()));
    // Applied once: Bob's inbox seqs are dense, one per message.
    let first = bob_seqs[0];
    assert_eq!(
        bob_seqs,
        (first..first + 20).collect::<Vec<_>>(),
        "one inbox item per message"
    );
    assert!(
        b.quiet("msg", Duration::from_millis(500)).await,
        "no copy arrives"
    );
    println!("delivery takeover + backlog: {took:?}; processor takeover: {takeover:?}");
    a.close().await;
    b.close().await;

    // FLUSHALL on the state Redis: accounts, inboxes, marks, offsets,
    // leases, sessions, all gone. The jobs notice their offsets vanished and
    // replay the log; the accounts come back and Bob's inbox is rebuilt.
    let t0 = Instant::now();
    let flushed = Command::new("redis-cli")
        .args(["-p", &cl.state_redis.port.to_string(), "FLUSHALL"])
        .output()
        .unwrap();
    assert!(flushed.status.success(), "{flushed:?}");
    let tb = loop {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/sessions", e2))
            .json(&json!({"username": "bob", "password": "password-1", "device_id": bob_device}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "Bob's account was not restored: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let restored = t0.elapsed();
    // Alice's old token works again once the accounts job has restored
    // her device's session from the log, as it restored Bob's account.
    eventually(
        "Alice's session restored",
        Duration::from_secs(20),
        || async { (get(&e2, &ta, "/v1/users/me").await.0 == 200).then_some(()) },
    )
    .await;
    let mut a = Client::connect(&e2, &ta).await;
    for i in 0..5 {
        // The leases went with the FLUSHALL: until the edges hold their
        // partitions again a send may be `unavailable`, and is sent again
        // with its client_msg_id, as a client does.
        let (cid, text) = (format!("f-{i}"), format!("after the flush {i}"));
        let ack = a.say_until_acked(&bob.id, &cid, &text).await;
        alice_to_bob.push(id(&ack["msg_id"]));
    }
    // The delivery node rebuilds Bob's inbox while the processors replay
    // the log (history writers too). Until it is done, a device that
    // connects is also sent items live as they are rebuilt, before its
    // sync replay; so let another device of Bob see every message first.
    let (tx, _) = login(&e1, "bob", None).await;
    let mut x = Client::connect(&e1, &tx).await;
    x.send(json!({"type": "sync"})).await;
    let mut seen = std::collections::HashSet::new();
    while !alice_to_bob.iter().all(|i| seen.contains(i)) {
        seen.insert(id(&x.expect("msg").await["msg_id"]));
    }
    x.close().await;
    // Bob's cursor is gone too, so a sync replays his whole inbox.
    let mut b = Client::connect(&e1, &tb).await;
    b.send(json!({"type": "sync"})).await;
    let got = messages(&mut b, alice_to_bob.len()).await;
    let ids: Vec<u64> = got.iter().map(|m| id(&m["msg_id"])).collect();
    assert_eq!(ids, alice_to_bob, "every message to Bob, once, in order");
    let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        b.quiet("msg", Duration::from_millis(500)).await,
        "no copy arrives"
    );
    println!("accounts restored {restored:?} after FLUSHALL");

    // History: the writers (on the processors, one of them SIGKILLed, and
    // replaying everything after the FLUSHALL wiped their offsets) put
    // every message in ClickHouse once; an edge pages through it.
    all_ids.extend(alice_to_bob[10..].iter().copied());
    all_ids.sort_unstable();
    all_ids.reverse();
    let path = format!("/v1/conversations/{cid}/messages?limit=200");
    eventually("every message once in scrollback", WAIT, || async {
        let (_, page) = get(&e2, &tb, &path).await;
        let ids: Vec<u64> = page["messages"]
            .as_array()
            .map(|ms| ms.iter().map(|m| id(&m["msg_id"])).collect())
            .unwrap_or_default();
        (ids == all_ids).then_some(())
    })
    .await;
}
