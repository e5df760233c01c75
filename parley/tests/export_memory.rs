//! The account export streams: the archive of an account with 100,000
//! messages downloads whole and in order while the server's memory grows
//! by a fraction of the archive's size (docs/security.md). The server is
//! its own process, so its peak resident memory is its own.

mod common;

use common::*;
use serde_json::Value;

const MESSAGES: usize = 100_000;
/// Sends in flight on the socket at once.
const WINDOW: usize = 1_000;

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_100k_messages_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_up(
        dir.path(),
        &[
            ("PARLEY__LIMITS__SENDS_PER_SEC", "1000000"),
            ("PARLEY__LIMITS__SENDS_BURST", "1000000"),
        ],
    );
    let (alice, bob) = alice_and_bob(&url).await;
    let (at, _) = login(&url, "alice", None).await;
    let mut a = Client::connect(&url, &at).await;
    let text = "x".repeat(100);
    let mut sent = 0;
    while sent < MESSAGES {
        for i in sent..sent + WINDOW {
            a.send(text_to(
                &bob.id,
                &format!("m{i}"),
                &format!("{i:06} {text}"),
            ))
            .await;
        }
        for _ in 0..WINDOW {
            a.expect("ack").await;
        }
        sent += WINDOW;
        if sent % 20_000 == 0 {
            eprintln!("{sent} messages sent");
        }
    }
    drop(a);
    let cid = direct(&alice.id, &bob.id);
    // The history trails the log: wait until it holds the last one.
    eventually("the history has every message", WAIT * 8, || async {
        let (_, page) = get(
            &url,
            &at,
            &format!("/v1/conversations/{cid}/messages?limit=1"),
        )
        .await;
        let text = page["messages"][0]["body"]["text"].as_str()?.to_owned();
        text.starts_with(&format!("{:06}", MESSAGES - 1))
            .then_some(())
    })
    .await;

    // The peak is measured from here: writing 5 to clear_refs resets it.
    let pid = child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kib(pid, "VmRSS:");
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/users/me/export"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    let peak = status_kib(pid, "VmHWM:");
    let grew = peak.saturating_sub(before);
    let archive_kib = body.len() as u64 / 1024;
    eprintln!("archive {archive_kib} KiB; server RSS {before} KiB, peak {peak} KiB (+{grew} KiB)");

    let archive: Value = serde_json::from_slice(&body).unwrap();
    let convs = archive["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    let messages = convs[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), MESSAGES);
    for (i, m) in messages.iter().enumerate() {
        let t = m["body"]["text"].as_str().unwrap();
        assert!(t.starts_with(&format!("{i:06} ")), "message {i} is {t:?}");
    }
    assert_eq!(archive["truncated"], false);
    assert!(archive_kib > 20_000, "{archive_kib} KiB");
    // Holding the archive would take it whole, and more as structs.
    assert!(
        grew < archive_kib / 4,
        "the server grew by {grew} KiB for an archive of {archive_kib} KiB"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
