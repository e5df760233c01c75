//! Contacts, privacy and presence fan-out through the protocol.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn set_privacy(url: &str, token: &str, presence: &str) {
    let (status, v) = call(
        reqwest::Method::PUT,
        &format!("{url}/v1/users/me/privacy"),
        token,
        Some(json!({"presence": presence})),
    )
    .await;
    assert_eq!((status, v), (200, json!({"presence": presence})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (bt, _) = login(&s.url, "bob", None).await;
    assert_eq!(
        get(&s.url, &bt, "/v1/contacts").await,
        (200, json!({"contacts": []}))
    );
    assert_eq!(add_contact(&s.url, &bt, &alice.id).await, 204);
    assert_eq!(add_contact(&s.url, &bt, &carol.id).await, 204);
    assert_eq!(
        add_contact(&s.url, &bt, &alice.id).await,
        204,
        "again: no change"
    );
    assert_eq!(
        get(&s.url, &bt, "/v1/contacts").await.1,
        json!({"contacts": [
            {"user_id": alice.id, "display_name": "alice"},
            {"user_id": carol.id, "display_name": "carol"}
        ]})
    );
    assert_eq!(add_contact(&s.url, &bt, &bob.id).await, 400, "not yourself");
    assert_eq!(add_contact(&s.url, &bt, "987654").await, 404);
    let url = format!("{}/v1/contacts", s.url);
    let bad = call(reqwest::Method::POST, &url, &bt, Some(json!({"id": 1}))).await;
    assert_eq!((bad.0, bad.1["code"].as_str()), (400, Some("bad_request")));
    let del = call(
        reqwest::Method::DELETE,
        &format!("{url}/{}", alice.id),
        &bt,
        None,
    )
    .await;
    assert_eq!(del.0, 204);
    assert_eq!(
        get(&s.url, &bt, "/v1/contacts").await.1,
        json!({"contacts": [{"user_id": carol.id, "display_name": "carol"}]})
    );
    let bad = call(
        reqwest::Method::PUT,
        &format!("{}/v1/users/me/privacy", s.url),
        &bt,
        Some(json!({"presence": "friends"})),
    )
    .await;
    assert_eq!(bad.0, 400);
    assert_eq!(
        get(&s.url, &bt, "/v1/users/me/privacy").await.1,
        json!({"presence": "everyone"})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_to_watchers_on_change_as_privacy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([alice, bob, _], [at, bt, ct]) = three_signed_in(&s.url).await;
    // Bob has alice as a contact; carol does not.
    assert_eq!(add_contact(&s.url, &bt, &alice.id).await, 204);
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;

    let mut a = Client::connect(&s.url, &at).await;
    let p = b.expect("presence").await;
    assert_eq!(
        (&p["user_id"], &p["online"]),
        (&json!(alice.id), &json!(true))
    );
    assert!(
        c.quiet("presence", Duration::from_millis(500)).await,
        "carol does not watch alice"
    );
    // On change only, not on every heartbeat.
    for _ in 0..3 {
        a.send(json!({"type": "heartbeat", "active": true})).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(b.quiet("presence", Duration::from_millis(500)).await);
    a.close().await;
    let p = b.expect("presence").await;
    assert_eq!(p["online"], false);
    assert!(
        p["last_seen"].as_u64().is_some(),
        "active heartbeats moved last seen: {p}"
    );

    // Nobody: no pushes, and GET hides it from others but not from alice.
    set_privacy(&s.url, &at, "nobody").await;
    let a = Client::connect(&s.url, &at).await;
    assert!(b.quiet("presence", Duration::from_millis(700)).await);
    let path = format!("/v1/users/{}/presence", alice.id);
    let hidden = json!({"user_id": alice.id, "online": false, "last_seen": null});
    assert_eq!(get(&s.url, &bt, &path).await, (200, hidden.clone()));
    let own = get(&s.url, &at, &path).await.1;
    assert_eq!(own["online"], true);
    assert!(own["last_seen"].as_u64().is_some());

    // Contacts: only those alice has added see it.
    set_privacy(&s.url, &at, "contacts").await;
    assert_eq!(get(&s.url, &bt, &path).await.1, hidden);
    assert_eq!(add_contact(&s.url, &at, &bob.id).await, 204);
    assert_eq!(get(&s.url, &bt, &path).await.1["online"], true);
    assert_eq!(
        get(&s.url, &ct, &path).await.1,
        hidden,
        "carol is not alice's contact"
    );
    a.close().await;
    let p = b.expect("presence").await;
    assert_eq!(
        (&p["user_id"], &p["online"]),
        (&json!(alice.id), &json!(false))
    );
    s.stop().await;
}
