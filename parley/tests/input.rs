//! Input that would change the wrong thing is refused: a client_msg_id
//! reused for another conversation, receipts past what was delivered or
//! naming nobody, oversized groups.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_msg_id_belongs_to_its_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let first = a.say(&bob.id, "once", "to bob").await;
    // The same id to Carol is no resend: refused, nothing appended.
    a.send(json!({"type": "send", "client_msg_id": "once", "to": {"user": carol.id}, "body": {"text": "to carol"}}))
        .await;
    let e = a.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("conflict"), Some("once"))
    );
    let mut c = Client::connect(&s.url, &login(&s.url, "carol", None).await.0).await;
    c.send(json!({"type": "sync"})).await;
    assert!(c.quiet("msg", Duration::from_millis(300)).await);
    // To Bob again it is still a resend.
    assert_eq!(a.say(&bob.id, "once", "to bob").await, first);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_cover_only_what_was_delivered_and_name_real_users() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    let cid = direct(&alice.id, &bob.id);
    let ack = a.say(&bob.id, "m1", "hello").await;
    b.expect("msg").await;
    // A read receipt naming an id far past the last message is held to it.
    b.send(json!({"type": "receipt", "conversation_id": cid, "msg_id": "18446744073709551000", "status": "read"}))
        .await;
    let st = a.expect("status").await;
    assert_eq!(
        (st["status"].as_str(), &st["msg_id"]),
        (Some("read"), &ack["msg_id"])
    );

    // A 1:1 conversation with a user that does not exist.
    let ghost = direct(&bob.id, "987654321");
    b.send(json!({"type": "receipt", "conversation_id": ghost, "msg_id": ack["msg_id"], "status": "delivered"}))
        .await;
    assert_eq!(b.expect("error").await["code"], "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_the_member_cap_is_refused_before_any_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (token, _) = login(&s.url, "alice", None).await;
    // 5,000 made-up members: the cap answers, not a lookup of each.
    let members: Vec<String> = (1_000_000..1_005_000u64).map(|i| i.to_string()).collect();
    let (status, v) = call(
        reqwest::Method::POST,
        &format!("{}/v1/groups", s.url),
        &token,
        Some(json!({"name": "huge", "members": members})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{v}");
    s.stop().await;
}
