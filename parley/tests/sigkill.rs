//! `parley up` as a child process, killed with SIGKILL mid-stream and
//! restarted on the same data dir: every acknowledged message reaches Bob
//! once, and resends after the crash keep their first ids.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

const TOTAL: usize = 1000;

/// Starts the binary and returns it with the URL it printed.
fn spawn(data_dir: &Path) -> (Child, String) {
    spawn_up(data_dir, &[("PARLEY__PARTITIONS", "4")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_when_the_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn(dir.path());
    let (_alice, bob) = alice_and_bob(&url).await;
    let (token, _) = login(&url, "alice", None).await;

    // client_msg_id -> msg_id of every ack Alice got before the kill.
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    // The number of acks so far, for the killer to wait on.
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let sender = {
        let (url, token, bob, acked) = (url.clone(), token.clone(), bob.id.clone(), acked.clone());
        tokio::spawn(async move {
            let mut a = Client::connect(&url, &token).await;
            for i in 0..TOTAL {
                let cid = format!("k-{i}");
                let frame = text_to(&bob, &cid, &format!("m{i}"));
                // The socket dies with the process: stop at the first failure.
                if !a.try_send(frame).await {
                    return;
                }
                let Some(ack) = a.try_expect("ack").await else {
                    return;
                };
                acked
                    .lock()
                    .unwrap()
                    .insert(cid, ack["msg_id"].as_str().unwrap().to_owned());
                count_tx.send_replace(i + 1);
            }
        })
    };
    // Kill at a random point in the stream.
    let kill_at = 150 + rand::random::<u64>() as usize % 600;
    // Ends early only if the sender stops (then the assertion below says why).
    let _ = count.wait_for(|&n| n >= kill_at).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let _ = sender.await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= kill_at.min(TOTAL),
        "{} acks before the kill",
        acked.len()
    );

    let (mut child, url) = spawn(dir.path());
    // Alice resends everything: what was acked keeps its id, the rest is sent now.
    let mut a = Client::connect(&url, &token).await;
    let mut all = HashMap::new();
    for i in 0..TOTAL {
        let cid = format!("k-{i}");
        let ack = a.say(&bob.id, &cid, &format!("m{i}")).await;
        let id = ack["msg_id"].as_str().unwrap().to_owned();
        if let Some(first) = acked.get(&cid) {
            assert_eq!(
                &id, first,
                "{cid} was acked before the crash; a resend keeps its id"
            );
        }
        all.insert(cid, id);
    }

    let mut b = Client::connect(&url, &login(&url, "bob", None).await.0).await;
    b.send(json!({"type": "sync"})).await;
    let mut ids = HashSet::new();
    let mut texts = HashSet::new();
    for n in 1..=TOTAL {
        let m = b.expect("msg").await;
        assert_eq!(m["seq"], n as u64, "dense seq");
        assert!(
            ids.insert(m["msg_id"].as_str().unwrap().to_owned()),
            "msg_id delivered twice"
        );
        assert!(
            texts.insert(m["body"]["text"].as_str().unwrap().to_owned()),
            "a message delivered twice"
        );
    }
    assert!(
        b.quiet("msg", Duration::from_millis(500)).await,
        "nothing beyond the {TOTAL} messages"
    );
    for (cid, id) in &acked {
        assert!(ids.contains(id), "acked {cid} ({id}) was lost");
    }
    assert_eq!(ids, all.values().cloned().collect::<HashSet<_>>());
    child.kill().unwrap();
    child.wait().unwrap();
}
