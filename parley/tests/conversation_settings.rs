//! How a user keeps conversations, through the protocol: pinned ones come
//! first in the list, archived ones are marked, muting, pinning and
//! archiving reach every device of the user as a `conversation_settings`
//! frame, and bad input changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};

async fn keep(
    url: &str,
    token: &str,
    method: reqwest::Method,
    cid: &str,
    what: &str,
) -> (u16, Value) {
    call(
        method,
        &format!("{url}/v1/conversations/{cid}/{what}"),
        token,
        None,
    )
    .await
}

/// The next `conversation_settings` frame of each of a user's two
/// devices, which must be the same.
async fn settings(a: &mut Client, b: &mut Client) -> Value {
    let f = a.expect("conversation_settings").await;
    assert_eq!(b.expect("conversation_settings").await, f);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_archived_and_muted_chats_are_the_same_on_every_device() {
    let dir = tempfile::tempdir().unwrap();
    pinned_archived_and_muted_chats_are_the_same_on_every_device_with(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_archived_and_muted_chats_are_the_same_on_every_device_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, cfg) = on_redis_and_clickhouse(dir.path());
    pinned_archived_and_muted_chats_are_the_same_on_every_device_with(cfg).await;
}

async fn pinned_archived_and_muted_chats_are_the_same_on_every_device_with(cfg: parley::Config) {
    use reqwest::Method;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (phone, _) = login(&s.url, "alice", None).await;
    let (laptop, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut p = Client::connect(&s.url, &phone).await;
    let mut l = Client::connect(&s.url, &laptop).await;
    let with_carol = p.say(&carol.id, "c", "hi carol").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_bob = p.say(&bob.id, "b", "hi bob").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Pinned from the phone: both devices are told.
    assert_eq!(
        keep(&s.url, &phone, Method::PUT, &with_carol, "pin")
            .await
            .0,
        204
    );
    assert_eq!(
        settings(&mut p, &mut l).await,
        json!({"type": "conversation_settings", "conversation_id": with_carol, "pinned": true, "archived": false})
    );
    // The list: Carol's chat first though Bob's is newer, and marked.
    let list = eventually("both chats listed", WAIT, || async {
        let (_, v) = get(&s.url, &laptop, "/v1/conversations").await;
        (v["conversations"].as_array().unwrap().len() == 2).then_some(v)
    })
    .await;
    let chats = list["conversations"].as_array().unwrap();
    assert_eq!(chats[0]["conversation_id"], with_carol.as_str());
    assert_eq!(chats[0]["pinned"], true);
    assert!(chats[1].get("pinned").is_none(), "{list}");

    // Archived from the laptop; then muted for an hour.
    assert_eq!(
        keep(&s.url, &laptop, Method::PUT, &with_bob, "archive")
            .await
            .0,
        204
    );
    assert_eq!(settings(&mut p, &mut l).await["archived"], true);
    let (_, v) = get(&s.url, &phone, "/v1/conversations").await;
    let bob_chat = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation_id"] == with_bob.as_str())
        .unwrap()
        .clone();
    assert_eq!(bob_chat["archived"], true);
    let until = parley_schemas::ids::now_ms() + 3_600_000;
    let (status, _) = call(
        Method::PUT,
        &format!("{}/v1/conversations/{with_bob}/mute", s.url),
        &laptop,
        Some(json!({"until": until})),
    )
    .await;
    assert_eq!(status, 204);
    let f = settings(&mut p, &mut l).await;
    assert_eq!(
        (f["archived"].clone(), f["muted_until"].clone()),
        (json!(true), json!(until))
    );
    // Pinning an archived chat takes it out of the archive.
    assert_eq!(
        keep(&s.url, &phone, Method::PUT, &with_bob, "pin").await.0,
        204
    );
    let f = settings(&mut p, &mut l).await;
    assert_eq!(
        (f["pinned"].clone(), f["archived"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        keep(&s.url, &phone, Method::DELETE, &with_bob, "pin")
            .await
            .0,
        204
    );
    assert_eq!(settings(&mut p, &mut l).await["pinned"], false);

    // At most five pinned: the sixth is refused and nothing changes.
    let mut groups = Vec::new();
    for i in 0..5 {
        groups.push(format!(
            "g:{}",
            create_group(&s.url, &phone, &format!("g{i}"), &[&bob.id]).await
        ));
    }
    for g in &groups[..4] {
        assert_eq!(keep(&s.url, &phone, Method::PUT, g, "pin").await.0, 204);
    }
    let (status, e) = keep(&s.url, &phone, Method::PUT, &groups[4], "pin").await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")), "{e}");
    let (_, kept) = get(&s.url, &phone, "/v1/push/settings").await;
    assert_eq!(kept["pinned"].as_array().unwrap().len(), 5, "{kept}");
    // Someone else's chat, or no chat at all: refused.
    let theirs = direct(&bob.id, &carol.id);
    assert_eq!(
        keep(&s.url, &phone, Method::PUT, &theirs, "pin").await.1["code"],
        "forbidden"
    );
    assert_eq!(
        keep(&s.url, &phone, Method::PUT, "nonsense", "archive")
            .await
            .0,
        400
    );
    let _ = (alice, bt);
    s.stop().await;
}
