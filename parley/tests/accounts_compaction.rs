//! The `accounts` topic is compacted (docs/retention.md): after a burst of
//! profile changes, contact and block toggles, sign-ins, a sign-out and an
//! account deletion, compaction drops the records later ones made
//! redundant, a deleted account's password hash leaves the log, and a
//! state store rebuilt from what is left is the same as the one that
//! lived through it all.

mod common;

use common::*;
use parley_engines::{Log, ReadLimit, SegmentLog, SegmentLogOptions};
use parley_schemas::event::Event;
use parley_schemas::ids::UserId;
use parley_schemas::{codec, topics};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rebuilt_from_the_compacted_accounts_topic_is_the_same() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // One partition of small segments: compaction has sealed ones to
    // work on after a few dozen records.
    cfg.partitions = 1;
    cfg.log_segment_bytes = 4096;
    cfg.retention.log_every_ms = 50;
    cfg.retention.accounts_compact_every_ms = 50;
    let s = Server::start_with(cfg.clone()).await;
    // The counter is the process's: deltas, under the lock above.
    let compacted = || metric(&s.url, "parley_log_compacted_records_total", "");
    let before = compacted().await;
    // Dave first: his account record is the log's first, never the last
    // of its segment, so compaction can always drop it.
    let dave = register(&s.url, "dave").await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (dt, _) = login(&s.url, "dave", None).await;
    let me = format!("{}/v1/users/me", s.url);
    for i in 0..30 {
        let patch = json!({"display_name": format!("Alice {i}"), "about": format!("take {i}")});
        assert_eq!(call(Method::PATCH, &me, &at, Some(patch)).await.0, 200);
    }
    let contact = format!("{}/v1/contacts/{}", s.url, bob.id);
    let blocked = format!("{}/v1/blocks/{}", s.url, carol.id);
    for _ in 0..10 {
        assert_eq!(add_contact(&s.url, &at, &bob.id).await, 204);
        assert_eq!(call(Method::DELETE, &contact, &at, None).await.0, 204);
        assert_eq!(block(&s.url, &at, &carol.id).await, 204);
        assert_eq!(call(Method::DELETE, &blocked, &at, None).await.0, 204);
    }
    assert_eq!(add_contact(&s.url, &at, &bob.id).await, 204);
    assert_eq!(block(&s.url, &at, &carol.id).await, 204);
    let privacy = format!("{}/v1/users/me/privacy", s.url);
    for audience in ["nobody", "contacts", "everyone", "contacts"] {
        let body = json!({"presence": audience});
        assert_eq!(call(Method::PUT, &privacy, &at, Some(body)).await.0, 200);
    }
    let (gone, _) = login(&s.url, "alice", None).await;
    let sign_out = format!("{}/v1/sessions/current", s.url);
    assert_eq!(call(Method::DELETE, &sign_out, &gone, None).await.0, 204);
    assert_eq!(add_contact(&s.url, &dt, &alice.id).await, 204);
    let deletion = json!({"password": "password-1"});
    assert_eq!(call(Method::DELETE, &me, &dt, Some(deletion)).await.0, 204);
    // More after it, so the deletion's records are not in the active
    // segment either.
    let (bt, _) = login(&s.url, "bob", None).await;
    for i in 0..20 {
        let patch = json!({"about": format!("later {i}")});
        assert_eq!(call(Method::PATCH, &me, &bt, Some(patch)).await.0, 200);
    }
    // The server compacts by itself, as it goes.
    eventually("the server compacted accounts", WAIT, || async {
        (compacted().await - before >= 20.0).then_some(())
    })
    .await;
    s.stop().await;

    let users: Vec<UserId> = [&alice, &bob, &carol, &dave]
        .iter()
        .map(|u| UserId(u.id.parse().unwrap()))
        .collect();
    let lived = dump(&cfg, &users).await;
    {
        let log = SegmentLog::open(dir.path().join("log"), SegmentLogOptions::default()).unwrap();
        let b = log
            .read(topics::ACCOUNTS, 0, 0, ReadLimit::records(100_000))
            .await
            .unwrap();
        for r in &b.records {
            eprintln!("DBG {} {:?}", r.offset, codec::decode(&r.payload).unwrap());
        }
    }
    // One more pass now that everything is in, so what is checked does
    // not hang on when the server's last pass ran.
    compact_now(&cfg, dir.path()).await;
    let (end, records, hashes) = accounts_log(dir.path(), users[3]).await;
    assert!(
        records as u64 + 50 <= end,
        "{records} of {end} records left"
    );
    assert_eq!(hashes, vec![parley_engines::state::ERASED.to_owned()]);

    // The store is lost and rebuilt from what compaction left.
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    let s = Server::start_with(cfg.clone()).await;
    s.stop().await;
    let rebuilt = dump(&cfg, &users).await;
    assert_eq!(rebuilt, lived);
    assert!(lived.contains("Alice 29"), "{lived}");
}

/// What the accounts topic derives for `users`, as text to compare.
async fn dump(cfg: &parley::Config, users: &[UserId]) -> String {
    let state = parley::backends::open_state(&cfg.state_url())
        .await
        .unwrap();
    let mut out = String::new();
    eprintln!(
        "DBG job offset {:?}",
        state.job_offset("accounts", 0).await.unwrap()
    );
    for &u in users {
        let a = state.account(u).await.unwrap();
        let mut sessions = state.device_sessions(u).await.unwrap();
        sessions.sort_by_key(|(d, _)| *d);
        out += &format!(
            "{u}: {a:?}\n  contacts {:?} blocked {:?} privacy {:?}\n  devices {} sessions {sessions:?}\n",
            state.contacts(u).await.unwrap(),
            state.blocked(u).await.unwrap(),
            state.privacy(u).await.unwrap(),
            state.devices_issued(u).await.unwrap(),
        );
    }
    out
}

/// A compaction pass of the stopped server's accounts topic.
async fn compact_now(cfg: &parley::Config, data: &std::path::Path) {
    use parley_processors::{compaction, retention};
    let state = parley::backends::open_state(&cfg.state_url())
        .await
        .unwrap();
    let log = SegmentLog::open(data.join("log"), SegmentLogOptions::default()).unwrap();
    let consumers = &compaction::CONSUMERS;
    let found = retention::consumers_floor(&log, &*state, topics::ACCOUNTS, 0, consumers);
    let (bounds, floor) = found.await.unwrap().unwrap();
    compaction::compact_partition(&log, 0, bounds.start..floor)
        .await
        .unwrap();
}

/// The accounts topic's end, how many records it holds, and the password
/// hashes of `user`'s account records in it.
async fn accounts_log(data: &std::path::Path, user: UserId) -> (u64, usize, Vec<String>) {
    let log = SegmentLog::open(data.join("log"), SegmentLogOptions::default()).unwrap();
    let b = log
        .read(topics::ACCOUNTS, 0, 0, ReadLimit::records(100_000))
        .await
        .unwrap();
    let hashes = b
        .records
        .iter()
        .filter_map(|r| match codec::decode(&r.payload).unwrap() {
            Event::AccountCreated(a) if a.user == user => Some(a.password_hash),
            _ => None,
        })
        .collect();
    (b.end, b.records.len(), hashes)
}
