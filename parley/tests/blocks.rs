//! Blocking through the protocol: a blocked user's messages are refused
//! with `forbidden` (the socket stays open), they no longer see the
//! blocker's presence, typing or profile photo, the block is the same on
//! every device of the blocker and survives a store rebuilt from the log,
//! groups are untouched, and unblocking undoes it all.

mod common;

use common::media::*;
use common::*;
use serde_json::{json, Value};

async fn put(url: &str, token: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::PUT, &format!("{url}{path}"), token, None).await
}

async fn delete(url: &str, token: &str, path: &str) -> (u16, Value) {
    call(
        reqwest::Method::DELETE,
        &format!("{url}{path}"),
        token,
        None,
    )
    .await
}

fn ids(list: &Value) -> Vec<&str> {
    list["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_cannot_write_or_watch_and_the_block_is_on_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = block_then_stop(config(dir.path())).await;
    // The store is derived from the log: wiped and rebuilt, the block holds.
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    held_then_unblocked(config(dir.path()), &alice, &bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_work_the_same_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, on) = on_redis_and_clickhouse(dir.path());
    let cfg = || on.clone();
    let (alice, bob) = block_then_stop(cfg()).await;
    held_then_unblocked(cfg(), &alice, &bob).await;
}

/// Bob blocks Alice and everything a block does is checked; the server
/// is stopped after.
async fn block_then_stop(cfg: parley::Config) -> (User, User) {
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (phone, _) = login(&s.url, "bob", None).await;
    let (laptop, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    // Bob has a photo, is online, and Alice may write to him.
    let (_, photo) = upload(&s.url, &phone, "image/png", png_like(2_000, 7)).await;
    let photo = photo["media_id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        reqwest::Method::PATCH,
        &format!("{}/v1/users/me", s.url),
        &phone,
        Some(json!({"avatar_media_id": photo})),
    )
    .await;
    assert_eq!(status, 200);
    let mut b = Client::connect(&s.url, &phone).await;
    b.send(json!({"type": "heartbeat", "active": true})).await;
    let presence = format!("/v1/users/{}/presence", bob.id);
    eventually("bob online to alice", WAIT, || async {
        let p = get(&s.url, &at, &presence).await.1;
        (p["online"] == true).then_some(())
    })
    .await;
    let mut a = Client::connect(&s.url, &at).await;
    a.say(&bob.id, "before", "hi bob").await;
    assert_eq!(b.expect("msg").await["body"]["text"], "hi bob");
    let group = create_group(&s.url, &ct, "three", &[&alice.id, &bob.id]).await;

    // Bob blocks Alice from his phone; his laptop has the same list.
    let path = format!("/v1/blocks/{}", alice.id);
    assert_eq!(put(&s.url, &phone, &path).await.0, 204);
    assert_eq!(put(&s.url, &phone, &path).await.0, 204, "again: no change");
    let (status, list) = get(&s.url, &laptop, "/v1/blocks").await;
    assert_eq!((status, ids(&list)), (200, vec![alice.id.as_str()]));
    assert_eq!(list["blocked"][0]["display_name"], "alice");

    // Alice's messages to him are refused; her socket stays open.
    let refused = a.try_say(&bob.id, "after", "are you there?").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );
    assert_eq!(refused["ref"], "after");
    let (status, e) = call(
        reqwest::Method::POST,
        &format!("{}/v1/messages", s.url),
        &at,
        Some(text_to(&bob.id, "after-http", "and now?")),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (403, Some("forbidden")));
    // She sees no presence, no last seen and no photo of his.
    let p = get(&s.url, &at, &presence).await.1;
    assert_eq!(
        (
            p["online"].clone(),
            p.get("last_seen").cloned().unwrap_or(Value::Null)
        ),
        (json!(false), Value::Null),
        "{p}"
    );
    let profile = get(&s.url, &at, &format!("/v1/users/{}", bob.id)).await.1;
    assert!(
        profile.get("avatar_media_id").is_none_or(Value::is_null),
        "{profile}"
    );
    assert_eq!(status_of(&s.url, &at, &photo).await, 404);
    // Carol, not blocked, still sees all of it.
    assert_eq!(get(&s.url, &ct, &presence).await.1["online"], true);
    assert_eq!(status_of(&s.url, &ct, &photo).await, 200);
    // Bob may still write to her, and a group they share is untouched.
    b.say(&alice.id, "bob-writes", "I can still write").await;
    assert_eq!(a.expect("msg").await["body"]["text"], "I can still write");
    a.send(send_frame(&group, "in-group", "hello all")).await;
    a.expect("ack").await;
    assert_eq!(b.expect("msg").await["body"]["text"], "hello all");

    // Bad input changes nothing.
    let me = format!("/v1/blocks/{}", bob.id);
    assert_eq!(put(&s.url, &phone, &me).await.1["code"], "bad_request");
    assert_eq!(
        put(&s.url, &phone, "/v1/blocks/999999").await.1["code"],
        "not_found"
    );
    assert_eq!(put(&s.url, &phone, "/v1/blocks/abc").await.0, 400);
    assert_eq!(
        ids(&get(&s.url, &phone, "/v1/blocks").await.1),
        vec![alice.id.as_str()]
    );
    s.stop().await;
    (alice, bob)
}

/// After a restart the block still holds; unblocked, Alice's messages go
/// through again.
async fn held_then_unblocked(cfg: parley::Config, alice: &User, bob: &User) {
    let s = Server::start_with(cfg).await;
    let path = format!("/v1/blocks/{}", alice.id);
    let (phone, _) = login(&s.url, "bob", None).await;
    let (at, _) = login(&s.url, "alice", None).await;
    assert_eq!(
        ids(&get(&s.url, &phone, "/v1/blocks").await.1),
        vec![alice.id.as_str()]
    );
    let mut a = Client::connect(&s.url, &at).await;
    assert_eq!(
        a.try_say(&bob.id, "rebuilt", "still?").await["code"],
        "forbidden"
    );

    // Unblocked: her messages go through again.
    assert_eq!(delete(&s.url, &phone, &path).await.0, 204);
    assert!(ids(&get(&s.url, &phone, "/v1/blocks").await.1).is_empty());
    let mut b = Client::connect(&s.url, &phone).await;
    b.send(json!({"type": "sync"})).await;
    a.say(&bob.id, "unblocked", "hello again").await;
    loop {
        let m = b.expect("msg").await;
        if m["body"]["text"] == "hello again" {
            break;
        }
    }
    s.stop().await;
}
