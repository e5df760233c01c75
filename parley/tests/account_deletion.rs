//! Account deletion through the protocol (`DELETE /v1/users/me`): the
//! password is asked again; the account leaves its groups, its uploads
//! and keys go, its profile becomes "Deleted account", its contacts,
//! blocks and privacy are erased, every device is signed out and cannot
//! sign in again; messages already sent stay with their recipients, from
//! the deleted account; nobody can write to it, and nobody can take its
//! name. A store rebuilt from the log agrees.

mod common;

use common::media::*;
use common::*;
use parley_schemas::ids::{ConversationId, DeviceId, UserId};
use serde_json::{json, Value};

async fn delete_me(url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    call(
        reqwest::Method::DELETE,
        &format!("{url}/v1/users/me"),
        token,
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_gone_for_everyone_and_its_sent_messages_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, g) = delete_then_stop(config(dir.path())).await;
    // The store is derived from the log: wiped and rebuilt, it agrees.
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    still_deleted(config(dir.path()), &alice, &bob, &g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_works_the_same_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, on) = on_redis_and_clickhouse(dir.path());
    let cfg = || on.clone();
    let (alice, bob, g) = delete_then_stop(cfg()).await;
    still_deleted(cfg(), &alice, &bob, &g).await;
}

/// Alice, with two devices, a photo, a contact, a block, keys and a
/// group, deletes her account; everything deletion does is checked, then
/// the server stops.
async fn delete_then_stop(cfg: parley::Config) -> (User, User, String) {
    let state_url = cfg.state_url();
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (phone, phone_id) = login(&s.url, "alice", None).await;
    let (laptop, laptop_id) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;

    let (_, photo) = upload(&s.url, &phone, "image/png", png_like(2_000, 3)).await;
    let photo = photo["media_id"].as_str().unwrap().to_owned();
    let patch = json!({"avatar_media_id": photo, "about": "at the beach"});
    let (status, _) = call(
        reqwest::Method::PATCH,
        &format!("{}/v1/users/me", s.url),
        &phone,
        Some(patch),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(add_contact(&s.url, &phone, &bob.id).await, 204);
    assert_eq!(block(&s.url, &phone, &carol.id).await, 204);
    let keys = json!({
        "identity_key": "AAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "signed_prekey": {"id": 1, "key": "AAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "signature": "AQ".repeat(42) + "AQ=="},
        "one_time_prekeys": [{"id": 1, "key": "AAAAAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],
    });
    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{}/v1/devices/me/keys", s.url),
        &phone,
        Some(keys),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let mut a = Client::connect(&s.url, &phone).await;
    let mut a2 = Client::connect(&s.url, &laptop).await;
    let mut b = Client::connect(&s.url, &bt).await;
    a.say(&bob.id, "1", "bye bob").await;
    a.send(media_to(json!({"user": bob.id}), "2", &photo)).await;
    a.expect("ack").await;
    let g = create_group(&s.url, &phone, "trip", &[&bob.id, &carol.id]).await;
    a.send(send_frame(&g, "3", "see you all")).await;
    a.expect("ack").await;
    assert_eq!(status_of(&s.url, &bt, &photo).await, 200);

    // What is hers alone: an inbox item from Bob, confirmed (a cursor)
    // and read (a mark), an archived chat, an unfinished upload.
    let from_bob = b.say(&alice.id, "b0", "hello alice").await;
    let cid = from_bob["conversation_id"].as_str().unwrap().to_owned();
    let m = loop {
        let m = a2.expect("msg").await;
        if m["from"] == bob.id.as_str() {
            break m;
        }
    };
    a2.send(json!({"type": "received", "seq": m["seq"]})).await;
    let read =
        json!({"type": "receipt", "conversation_id": cid, "msg_id": m["msg_id"], "status": "read"});
    a2.send(read).await;
    loop {
        let st = b.expect("status").await;
        if st["msg_id"] == m["msg_id"] && st["status"] == "read" {
            break;
        }
    }
    let archive = format!("{}/v1/conversations/{cid}/archive", s.url);
    let (status, _) = call(reqwest::Method::PUT, &archive, &phone, None).await;
    assert_eq!(status, 204);
    let new_upload = json!({"size": 100_000, "mime": "image/png"});
    let uploads = format!("{}/v1/media/uploads", s.url);
    let (status, up) = call(reqwest::Method::POST, &uploads, &phone, Some(new_upload)).await;
    assert_eq!(status, 201, "{up}");
    let upload = up["upload_id"].as_str().unwrap().to_owned();
    let part = png_like(100_000, 9);
    let (status, _) = put_chunk(&s.url, &phone, &upload, 0, &part[..40_000], 100_000).await;
    assert_eq!(status, 200);
    let user = UserId(alice.id.parse().unwrap());
    if state_url.starts_with("redis") {
        // Redis can be looked into while the server runs: it is all there.
        let state = parley::backends::open_state(&state_url).await.unwrap();
        eventually("her cursor and mark stored", WAIT, || async {
            let cursor = state.cursor(user, device(&laptop_id)).await.unwrap();
            let mark = state.marks(parse_cid(&cid), user).await.unwrap();
            (cursor.is_some() && mark.read.is_some()).then_some(())
        })
        .await;
        assert!(!state.inbox_range(user, 0, 10).await.unwrap().is_empty());
        assert!(state.notify_settings(user).await.unwrap().is_some());
    }
    assert!(deep_files(&s.data_dir, &format!("uploads/{upload}")) > 0);

    // The password is asked again: a token alone deletes nothing.
    assert_eq!(delete_me(&s.url, &phone, None).await.0, 400);
    let wrong = json!({"password": "not-hers-1"});
    assert_eq!(delete_me(&s.url, &phone, Some(wrong)).await.0, 403);
    assert_eq!(get(&s.url, &phone, "/v1/users/me").await.0, 200);

    let right = json!({"password": "password-1"});
    let (status, body) = delete_me(&s.url, &phone, Some(right)).await;
    assert_eq!(status, 204, "{body}");
    // Every device is signed out: sockets close, tokens stop working,
    // and the password no longer signs in.
    while a.recv().await.is_some() {}
    while a2.recv().await.is_some() {}
    assert_eq!(get(&s.url, &phone, "/v1/users/me").await.0, 401);
    assert_eq!(get(&s.url, &laptop, "/v1/contacts").await.0, 401);
    assert_eq!(sign_in(&s.url, "alice", None).await.0, 401);

    // Bob still has what she sent (the history trails the log).
    let chat = format!("/v1/conversations/{}/messages", direct(&alice.id, &bob.id));
    eventually("her message in Bob's scrollback", WAIT, || async {
        let (_, page) = get(&s.url, &bt, &chat).await;
        page["messages"]
            .as_array()?
            .iter()
            .any(|m| m["body"]["text"] == "bye bob" && m["from"] == alice.id.as_str())
            .then_some(())
    })
    .await;
    // Her photo went with her, and she can no longer be written to.
    assert_eq!(status_of(&s.url, &bt, &photo).await, 404);
    b.send(text_to(&alice.id, "b1", "are you there?")).await;
    let e = b.expect("error").await;
    assert_eq!(e["code"], "not_found", "{e}");
    b.say(&carol.id, "b2", "the socket stays open").await;

    checked_deleted(&s.url, &alice, &bob, &bt, &ct, &g).await;
    // Her unfinished upload went with her.
    assert_eq!(deep_files(&s.data_dir, &format!("uploads/{upload}")), 0);
    assert_eq!(deep_files(&s.data_dir, &format!("uploads-by/{user}")), 0);
    s.stop().await;

    // So did her inbox, cursors, read marks and chat settings (the
    // laptop's last confirmation, saved as its socket closed, too).
    let state = parley::backends::open_state(&state_url).await.unwrap();
    assert!(state.inbox_range(user, 0, 10).await.unwrap().is_empty());
    for d in [&phone_id, &laptop_id] {
        assert_eq!(state.cursor(user, device(d)).await.unwrap(), None);
    }
    let mark = state.marks(parse_cid(&cid), user).await.unwrap();
    assert_eq!(mark, Default::default());
    assert_eq!(state.notify_settings(user).await.unwrap(), None);
    (alice, bob, g)
}

fn device(id: &str) -> DeviceId {
    DeviceId(id.parse().unwrap())
}

fn parse_cid(cid: &str) -> ConversationId {
    cid.parse().unwrap()
}

/// What others see of a deleted account, the same after a restart.
async fn checked_deleted(url: &str, alice: &User, bob: &User, bt: &str, ct: &str, g: &str) {
    let (status, p) = get(url, bt, &format!("/v1/users/{}", alice.id)).await;
    assert_eq!(status, 200);
    assert_eq!(p["display_name"], "Deleted account", "{p}");
    assert_eq!(p["deleted"], true);
    assert_eq!(p["username"], "");
    assert_eq!(p["about"], "");
    assert!(p.get("avatar_media_id").is_none(), "{p}");
    assert_eq!(get(url, bt, "/v1/users?username=alice").await.0, 404);
    let (status, _) = get(url, bt, &format!("/v1/users/{}/presence", alice.id)).await;
    assert_eq!(status, 404);
    let (status, _) = get(url, bt, &format!("/v1/users/{}/keys", alice.id)).await;
    assert_eq!(status, 404);
    // She left the group; Bob and Carol go on in it.
    let (status, info) = get(url, ct, &format!("/v1/groups/{g}")).await;
    assert_eq!(status, 200);
    let members: Vec<&str> = info["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(!members.contains(&alice.id.as_str()), "{info}");
    assert!(members.contains(&bob.id.as_str()), "{info}");
    assert!(
        info["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["admin"] == true),
        "the group keeps an admin: {info}"
    );
    // Her name stays taken: nobody can pose as her in old chats.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/users"))
        .json(&json!({"username": "alice", "password": "password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

async fn still_deleted(cfg: parley::Config, alice: &User, bob: &User, g: &str) {
    let s = Server::start_with(cfg).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    assert_eq!(sign_in(&s.url, "alice", None).await.0, 401);
    // The rebuilt store has it once the accounts job and the router
    // caught up with the log.
    eventually("the store rebuilt the deletion", WAIT, || async {
        let (_, p) = get(&s.url, &bt, &format!("/v1/users/{}", alice.id)).await;
        (p["deleted"] == true).then_some(())
    })
    .await;
    checked_deleted(&s.url, alice, bob, &bt, &ct, g).await;
    s.stop().await;
}
