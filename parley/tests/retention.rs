//! Log retention through the protocol: with small segments and no age
//! to keep, the log drops what every consumer has passed while messages
//! flow, and a device that was offline the whole time still gets every
//! message, as does scrollback.

mod common;

use std::collections::BTreeSet;

use common::media::*;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_trimmed_behind_its_consumers_and_no_one_misses_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_segment_bytes = 4096;
    cfg.retention.log_hours = 0.0;
    cfg.retention.log_every_ms = 50;
    cfg.limits.sends_per_sec = 10_000;
    let _counters = counters_to_myself().await;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let cid = direct(&alice.id, &bob.id);
    let trimmed = |topic: &'static str| {
        let url = s.url.clone();
        async move {
            let label = format!("topic=\"{topic}\"");
            metric(&url, "parley_log_trimmed_records_total", &label).await
        }
    };
    let (events0, inbox0) = (trimmed("events").await, trimmed("inbox").await);
    const N: usize = 300;
    let mut sent = Vec::new();
    for i in 0..N {
        let text = format!("message {i} {}", "x".repeat(100));
        sent.push(a.say(&bob.id, &format!("m{i}"), &text).await["msg_id"].clone());
    }
    eventually("events trimmed", WAIT, || async {
        (trimmed("events").await > events0).then_some(())
    })
    .await;
    eventually("inbox trimmed", WAIT, || async {
        (trimmed("inbox").await > inbox0).then_some(())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_delivered_keeps_an_item_until_every_device_has_it_and_no_content_in_history() {
    use parley_engines::state::InboxStore;
    use parley_engines::History;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.retention.mode = parley_schemas::retention::RetentionMode::UntilDelivered;
    let _counters = counters_to_myself().await;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (phone, _) = login(&s.url, "bob", None).await;
    let (laptop, laptop_id) = login(&s.url, "bob", None).await;
    let deleted0 = metric(&s.url, "parley_inbox_rows_deleted_total", "").await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            a.say(
                &bob.id,
                &format!("m{i}"),
                &format!("the cake is in the oven {i}"),
            )
            .await,
        );
    }
    let cid = sent[0]["conversation_id"].as_str().unwrap().to_owned();
    // No scrollback from the server in this mode: the devices keep it.
    let (status, page) = get(&s.url, &at, &format!("/v1/conversations/{cid}/messages")).await;
    assert_eq!((status, page), (200, json!({"messages": []})));

    // The phone has them all and says so; the laptop has not: they stay.
    let mut p = Client::connect(&s.url, &phone).await;
    p.send(json!({"type": "sync"})).await;
    let mut last = 0;
    for _ in 0..5 {
        last = p.expect("msg").await["seq"].as_u64().unwrap();
    }
    p.send(json!({"type": "received", "seq": last})).await;
    p.close().await;
    let mut l = Client::connect(&s.url, &laptop).await;
    l.send(json!({"type": "sync"})).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(l.expect("msg").await["msg_id"].clone());
    }
    let ids: Vec<_> = sent.iter().map(|a| a["msg_id"].clone()).collect();
    assert_eq!(got, ids, "the laptop still got every one");
    // Now every device has them: they go from the inbox.
    l.send(json!({"type": "received", "seq": last})).await;
    l.close().await;
    eventually("delivered rows deleted", WAIT, || async {
        let n = metric(&s.url, "parley_inbox_rows_deleted_total", "").await;
        (n - deleted0 >= 5.0).then_some(())
    })
    .await;
    // A device signed in later gets nothing old.
    let (tablet, _) = login(&s.url, "bob", None).await;
    let mut t = Client::connect(&s.url, &tablet).await;
    t.send(json!({"type": "sync"})).await;
    a.say(&bob.id, "later", "after the rest").await;
    let first = t.expect("msg").await;
    assert_eq!(first["body"]["text"], "after the rest", "{first}");
    assert_ne!(laptop_id, "");
    s.stop().await;

    // Read the stores directly: the inbox holds only the later one, and the
    // history has the messages without their text.
    let state = parley_engines::RedbState::open(dir.path().join("state.redb")).unwrap();
    let bob_id = parley_schemas::ids::UserId(bob.id.parse().unwrap());
    let rows = state.inbox_range(bob_id, 0, 100).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let history = parley_engines::RedbHistory::open(dir.path().join("history.redb")).unwrap();
    let conversation = cid.parse().unwrap();
    let kept = history.page(conversation, None, 100).await.unwrap();
    assert_eq!(kept.len(), 6, "metadata of each");
    for m in kept {
        assert_eq!(m.body, parley_schemas::wire::Body::Text(String::new()));
    }
    let _ = alice;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_back_after_its_items_expired_is_told_not_left_with_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Rows are kept three seconds; the pass looks every 100 ms.
    cfg.retention.undelivered_days = 3.0 / 86_400.0;
    cfg.retention.log_every_ms = 50;
    cfg.retention.history_every_ms = 100;
    let _counters = counters_to_myself().await;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let expired0 = metric(&s.url, "parley_inbox_rows_expired_total", "").await;
    let mut a = Client::connect(&s.url, &at).await;
    for i in 0..3 {
        a.say(&bob.id, &format!("old{i}"), "sent while bob was away")
            .await;
    }
    // Three rows in Bob's inbox, three in Alice's (her own sends).
    eventually("the rows expired", WAIT, || async {
        let n = metric(&s.url, "parley_inbox_rows_expired_total", "").await;
        (n - expired0 >= 6.0).then_some(())
    })
    .await;
    let fresh = a.say(&bob.id, "new", "sent now").await;

    // Bob comes back: told what expired, then given what is left.
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;
    let first = b.next().await;
    assert_eq!(first, json!({"type": "expired", "up_to_seq": 3}));
    let msg = b.expect("msg").await;
    assert_eq!(
        (msg["seq"].as_u64(), &msg["msg_id"]),
        (Some(4), &fresh["msg_id"])
    );
    // Scrollback still has all four.
    let cid = direct(&alice.id, &bob.id);
    let ids = eventually("scrollback", WAIT, || async {
        let ids = scrollback(&s.url, &bt, &cid).await;
        (ids.len() == 4).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 4);
    // A device that has seq 4 (it syncs from there, as clients do) is not
    // told again. (The first socket may be told twice: a push can start
    // the backlog before `sync` replays it, as with messages.)
    b.close().await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync", "since": 4})).await;
    let again =
        tokio::time::timeout(std::time::Duration::from_millis(300), b.expect("expired")).await;
    assert!(again.is_err(), "{again:?}");
    s.stop().await;
}

/// A media probe that fetches nothing: HEAD sends no body, so it is not
/// a download.
async fn head(url: &str, token: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .head(format!("{url}/v1/media/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Media under `until_delivered`, swept every 100 ms with no grace.
fn media_config(dir: &std::path::Path) -> parley::config::Config {
    let mut cfg = config(dir);
    cfg.retention.mode = parley_schemas::retention::RetentionMode::UntilDelivered;
    cfg.media_blob_grace_ms = 0;
    cfg.media_sweep_every_ms = 100;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_delivered_deletes_media_once_every_recipient_downloaded_it() {
    let dir = tempfile::tempdir().unwrap();
    let _counters = counters_to_myself().await;
    let s = Server::start_with(media_config(dir.path())).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let id = |v: &Value| v["media_id"].as_str().unwrap().to_owned();
    let (_, photo) = upload(&s.url, &at, "image/png", png_like(50_000, 1)).await;
    let (_, doc) = upload(&s.url, &at, "image/png", png_like(5_000, 2)).await;
    let (photo, doc) = (id(&photo), id(&doc));
    let group = create_group(&s.url, &at, "trip", &[&bob.id, &carol.id]).await;
    let mut a = Client::connect(&s.url, &at).await;
    a.send(media_to(json!({"group": group}), "p", &photo)).await;
    a.expect("ack").await;
    a.send(media_to(json!({"user": bob.id}), "d", &doc)).await;
    a.expect("ack").await;

    // Bob: part of the photo, then all of it, then the document.
    let r = fetch(&s.url, &bt, &photo, Some("bytes=0-99")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    let r = fetch(&s.url, &bt, &photo, None).await;
    assert!(r.bytes().await.unwrap() == png_like(50_000, 1));
    let r = fetch(&s.url, &bt, &doc, None).await;
    assert!(r.bytes().await.unwrap() == png_like(5_000, 2));
    // The document's only recipient has it: gone, for the uploader too.
    // The photo, fetched before it, has been looked at by then: Carol has
    // not fetched it, so it stays.
    eventually("the document deleted", WAIT, || async {
        (head(&s.url, &at, &doc).await == 404).then_some(())
    })
    .await;
    assert_eq!(head(&s.url, &bt, &doc).await, 404);
    assert_eq!(head(&s.url, &at, &photo).await, 200);
    assert_eq!(head(&s.url, &ct, &photo).await, 200);

    // Carol fetches the rest of it, resuming: the last byte counts.
    let r = fetch(&s.url, &ct, &photo, Some("bytes=100-")).await;
    assert_eq!(r.status(), 206);
    r.bytes().await.unwrap();
    eventually("the photo deleted", WAIT, || async {
        (head(&s.url, &at, &photo).await == 404).then_some(())
    })
    .await;
    eventually("their bytes deleted", WAIT, || async {
        (files(dir.path(), "blobs") == 0).then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_delivered_deletes_media_no_one_downloaded_after_media_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = media_config(dir.path());
    cfg.retention.media_days = 3.0 / 86_400.0; // three seconds
    let _counters = counters_to_myself().await;
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (_, m) = upload(&s.url, &at, "image/png", png_like(5_000, 3)).await;
    let m = m["media_id"].as_str().unwrap().to_owned();
    let mut a = Client::connect(&s.url, &at).await;
    a.send(media_to(json!({"user": bob.id}), "m", &m)).await;
    a.expect("ack").await;
    assert_eq!(head(&s.url, &bt, &m).await, 200);
    eventually("the unfetched media deleted", WAIT, || async {
        (head(&s.url, &bt, &m).await == 404).then_some(())
    })
    .await;
    assert_eq!(head(&s.url, &at, &m).await, 404);
    s.stop().await;
}
